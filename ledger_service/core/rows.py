"""Decoded events in their row form: the input the store's writer accepts without building objects.

A row is a plain tuple of ints, strings, bools and None: the event class's index in
:data:`EVENT_TYPES`, its position's fields and its own fields, in dataclass order. A fetch process
decodes logs straight into rows and marshals them across its pipe (``indexer/wire.py``); the writer
(``store/ingest.py``) turns an ItemEventRecorded row into its table row with no object in between.
:class:`EventRows` is a sequence of such rows that reads as a sequence of events. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, cast, get_args, overload

from ledger_service.core.events import DecodedEvent, ItemEventRecorded, LogPosition

EVENT_TYPES: tuple[type[Any], ...] = get_args(DecodedEvent)
"""The event classes, by their index in a row."""

_POSITION = attrgetter(*(f.name for f in fields(LogPosition)))
_FIELDS: dict[type[Any], tuple[int, Callable[[Any], tuple[Any, ...]]]] = {}
for _index, _cls in enumerate(EVENT_TYPES):
    _names = [f.name for f in fields(_cls)]
    if _names[0] != "pos" or len(_names) < 3:
        raise TypeError(f"{_cls.__name__}: an event's first field must be its position, followed by two or more")
    _FIELDS[_cls] = (_index, attrgetter(*_names[1:]))


def own_position(cls: type[Any], name: str) -> int:
    """Where field ``name`` of event class ``cls`` sits among a row's own fields (the dataclass's order, after
    ``pos``): code reading rows takes positions from here, not from a copy of the layout."""
    names = [f.name for f in fields(cls)][1:]
    try:
        return names.index(name)
    except ValueError:
        raise TypeError(f"{cls.__name__} has no field {name}") from None


def encode_event(event: DecodedEvent) -> tuple[Any, ...]:
    """An event's row form: (its class's index, its position's fields, its own fields)."""
    index, own = _FIELDS[type(event)]
    return (index, _POSITION(event.pos), own(event))


ITEM_EVENT_RECORDED: int = EVENT_TYPES.index(ItemEventRecorded)
"""ItemEventRecorded's index in a row."""


def row_order(row: tuple[Any, ...]) -> tuple[int, int]:
    """(block number, log index) of a row: its place in the chain's total order."""
    return (row[1][0], row[1][4])


def decode_event(row: tuple[Any, ...]) -> DecodedEvent:
    """The event of a row (see :func:`encode_event`)."""
    index, pos, own = row
    event: DecodedEvent = EVENT_TYPES[index](LogPosition(*pos), *own)
    return event


class EventRows(Sequence[DecodedEvent]):
    """Events kept in their row form, as a fetch process sends them: a sequence of events that builds
    each event object only when it is read.

    :meth:`Store.apply <ledger_service.store.Store.apply>` reads :attr:`rows` themselves: an
    ItemEventRecorded whose checks pass becomes its item_events row with no object in between. Building
    the two objects of each event and reading them back into a row cost the writer ~1.9 us an event; the
    row path takes ~0.9 (5,120 events of a node's answer).
    """

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> DecodedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> EventRows: ...

    def __getitem__(self, index: int | slice) -> DecodedEvent | EventRows:
        if isinstance(index, slice):
            return EventRows(self.rows[index])
        return decode_event(self.rows[index])

    def __iter__(self) -> Iterator[DecodedEvent]:
        types, position = EVENT_TYPES, LogPosition
        for index, pos, own in self.rows:
            yield types[index](position(*pos), *own)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventRows):
            return self.rows == other.rows
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"EventRows({len(self.rows)} events)"


def joined_events(parts: Sequence[Sequence[DecodedEvent]]) -> Sequence[DecodedEvent]:
    """The events of consecutive parts as one sequence; EventRows stay rows."""
    if all(isinstance(part, EventRows) for part in parts):
        return EventRows([row for part in parts for row in cast(EventRows, part).rows])
    return [event for part in parts for event in part]
