"""The error list of a refused EPCIS document: one entry per problem, each naming where it is.

Invariant: every entry has a JSON pointer (RFC 6901) into the document as sent and a sentence a person
can act on; ``index`` is the event's position in ``epcisBody.eventList`` (None for a problem of the
document itself). :class:`DocumentRefusedError` carries the whole list, never only the first problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger_service.errors import InvalidRequestError

EVENT_LIST = "/epcisBody/eventList"


@dataclass(frozen=True, slots=True)
class EventError:
    """One problem in a document."""

    index: int | None
    pointer: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "pointer": self.pointer, "message": self.message}


def event_pointer(index: int, *path: str | int) -> str:
    """The JSON pointer of event ``index`` (or of ``path`` inside it)."""
    return "/".join([EVENT_LIST, str(index), *(escape(str(p)) for p in path)])


def escape(token: str) -> str:
    """A reference token of a JSON pointer (``~`` and ``/`` escaped)."""
    return token.replace("~", "~0").replace("/", "~1")


def index_of(pointer: str) -> int | None:
    """The event index a pointer lies in, None if it is not inside an event."""
    prefix = EVENT_LIST + "/"
    if not pointer.startswith(prefix):
        return None
    head = pointer[len(prefix) :].split("/", 1)[0]
    return int(head) if head.isdigit() else None


class DocumentRefusedError(InvalidRequestError):
    """A document that cannot be captured, with every problem found (HTTP 422)."""

    def __init__(self, errors: Sequence[EventError], *, summary: str | None = None, malformed: bool = False) -> None:
        self.errors = tuple(errors)
        self.malformed = malformed
        """The document is not JSON at all (HTTP 400, not 422)."""
        events = sorted({e.index for e in self.errors if e.index is not None})
        if summary is None:
            if events:
                summary = (
                    f"the document was not captured: {len(events)} event(s) are refused ({_list(events)}); "
                    "nothing of it was recorded. Correct them and send the whole document again"
                )
            else:
                summary = f"the document was not captured: {self.errors[0].message}" if self.errors else ""
        super().__init__(summary)


def _list(indexes: Sequence[int], most: int = 10) -> str:
    shown = ", ".join(f"#{i}" for i in indexes[:most])
    return shown + (f" and {len(indexes) - most} more" if len(indexes) > most else "")
