"""Where each field of a decoded event sits in its log, read from the contract ABI.

:data:`~ledger_service.core.events.EVENT_SOURCES` names, for each contract event the indexer decodes, the
dataclass it fills; the ABI gives each parameter's type and whether it is indexed. :func:`event_layout`
joins the two into an :class:`EventLayout` (a topic or a data word per field, in the dataclass's order) and
refuses, with a :class:`~ledger_service.errors.ConfigurationError` that names the event and the field, any
disagreement: a parameter with no field, a field with no parameter, a type the field cannot hold, a type the
decoder cannot read. :func:`fields_function` turns a layout into the function that reads an event's own
fields from a log's topics and data. Nothing about an event's shape is written anywhere else in the
indexer: a new field is a change in the contract, the dataclass and the code that uses it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ledger_service.core.events import EventSource, LogPosition
from ledger_service.errors import ConfigurationError

Topics = Sequence[str]
FieldsFn = Callable[[Topics, str], tuple[Any, ...]]
"""(topics, data hex without ``0x``, lowercase) -> the event's own fields in dataclass order."""


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """One dataclass field and where its value comes from.

    ``kind``: ``bytes32``, ``address``, ``uint``, ``int`` (signed), ``bool`` or ``string`` (ABI types),
    ``constant`` (a value of :attr:`EventSource.constants`) or ``derived`` (computed by the decoder from
    other fields' words).
    ``topic``: its index in the log's topics when indexed; ``word``: its head word in the data otherwise
    (for a string, the word holding its offset).
    """

    name: str
    kind: str
    topic: int | None = None
    word: int | None = None
    value: object = None

    def word_source(self) -> tuple[str, int]:
        """("topic", index) or ("word", index): where the field's 32-byte word is in the log."""
        if self.topic is not None:
            return ("topic", self.topic)
        if self.word is not None and self.kind != "string":
            return ("word", self.word)
        raise ConfigurationError(f"the field {self.name} ({self.kind}) is not one 32-byte word of the log")


@dataclass(frozen=True, slots=True)
class EventLayout:
    """An ABI event as the decoder reads it: its signature, topic count, data size and fields."""

    source: EventSource
    signature: str
    topics: int
    """1 (topic0) + the indexed parameters."""
    data_words: int
    """The data's head words: the least a log of this event carries (a string adds its length word at least)."""
    min_data_words: int
    fields: tuple[FieldLayout, ...]
    """The dataclass's own fields (all but ``pos``), in its order."""

    @property
    def name(self) -> str:
        return self.source.event

    def field(self, name: str) -> FieldLayout:
        for layout in self.fields:
            if layout.name == name:
                return layout
        raise ConfigurationError(f"{self.source.cls.__name__} has no field {name}")


def snake_case(name: str) -> str:
    """An ABI parameter's name as a dataclass field's (``fastRefundMaxReturns90d``: ``fast_refund_max_returns_90d``)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z0-9])|(?<=[0-9])(?=[A-Z])", "_", name).lower()


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def abi_signature(event: dict[str, Any]) -> str:
    """The canonical signature of an ABI event entry, e.g. ``SellerSet(address,address,bool)``."""
    return f"{event['name']}({','.join(_abi_type(p) for p in event.get('inputs', []))})"


_KINDS: dict[str, tuple[str, type]] = {"bytes32": ("bytes32", str), "address": ("address", str), "bool": ("bool", bool)}
"""ABI type -> (the decoder's kind, the Python type of the dataclass field)."""


def _kind(abi_type: str) -> tuple[str, type] | None:
    if abi_type in _KINDS:
        return _KINDS[abi_type]
    width = re.fullmatch(r"(u?)int(\d*)", abi_type)
    if width and (not width[2] or (int(width[2]) % 8 == 0 and 8 <= int(width[2]) <= 256)):
        return ("uint" if width[1] else "int", int)
    if abi_type == "string":
        return ("string", str)
    return None


def _annotation_types(annotation: Any) -> set[type]:
    args = typing.get_args(annotation)
    if args:
        return {a for a in args if isinstance(a, type)}
    return {annotation} if isinstance(annotation, type) else set()


def _shown(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def event_layout(source: EventSource, abi: list[dict[str, Any]]) -> EventLayout:
    """The layout of ``source``'s event in ``abi`` (one contract's ABI), checked against its dataclass."""
    where = f"{source.contract}.{source.event}"
    cls = source.cls
    matches = [e for e in abi if e.get("type") == "event" and e.get("name") == source.event]
    if not matches:
        raise ConfigurationError(
            f"the {source.contract} ABI has no event {source.event}: recompile, or update ledger_service/core/events.py"
        )
    event = matches[0]
    found: dict[str, FieldLayout] = {}
    abi_types: dict[str, str] = {}
    topic = 1
    word = 0
    dynamic = False

    def take(name: str, abi_type: str, *, indexed: bool) -> None:
        nonlocal topic, word, dynamic
        field_name = snake_case(name)
        kind = _kind(abi_type)
        if kind is None or (indexed and kind[0] == "string"):
            raise ConfigurationError(
                f"{where}: the parameter {name} is {'an indexed ' if indexed else ''}{abi_type}, a type the indexer "
                "does not decode: add it to ledger_service/indexer/layout.py"
            )
        if field_name in found:
            raise ConfigurationError(f"{where}: two parameters map to the field {field_name}")
        abi_types[field_name] = abi_type
        if indexed:
            found[field_name] = FieldLayout(field_name, kind[0], topic=topic)
            topic += 1
        else:
            found[field_name] = FieldLayout(field_name, kind[0], word=word)
            word += 1
            dynamic = dynamic or kind[0] == "string"

    for param in event.get("inputs", []):
        if str(param["type"]) == "tuple" and not param.get("indexed"):
            for component in param.get("components", []):
                if str(component["type"]).startswith("tuple"):
                    raise ConfigurationError(f"{where}: a nested struct in {param['name']} is not decoded")
                take(str(component["name"]), str(component["type"]), indexed=False)
        else:
            take(str(param["name"]), str(param["type"]), indexed=bool(param.get("indexed")))

    hints = typing.get_type_hints(cls)
    own = [f.name for f in fields(cls)]
    if own[:1] != ["pos"] or hints.get("pos") is not LogPosition:
        raise ConfigurationError(f"{cls.__name__}: an event's first field must be its position (pos: LogPosition)")
    constants = dict(source.constants)
    layouts: list[FieldLayout] = []
    for name in own[1:]:
        if name in constants:
            layouts.append(FieldLayout(name, "constant", value=constants.pop(name)))
            continue
        if name in source.derived:
            layouts.append(FieldLayout(name, "derived"))
            continue
        layout = found.pop(name, None)
        if layout is None:
            raise ConfigurationError(
                f"{where} in the ABI has no parameter for {cls.__name__}.{name}: add it to the contract's event, "
                f"or remove the field from ledger_service/core/events.py"
            )
        expected = {"bytes32": str, "address": str, "string": str, "uint": int, "int": int, "bool": bool}[layout.kind]
        if expected not in _annotation_types(hints[name]):
            raise ConfigurationError(
                f"{where}: the parameter for {cls.__name__}.{name} is {abi_types[name]}, which decodes to "
                f"{expected.__name__}, but the field is declared {_shown(hints[name])}"
            )
        layouts.append(layout)
    if found:
        extra = ", ".join(sorted(found))
        raise ConfigurationError(
            f"{where} in the ABI has parameters that {cls.__name__} does not: {extra}: add them to the dataclass "
            f"in ledger_service/core/events.py (or rebuild the contracts if the ABI is stale)"
        )
    if constants:
        raise ConfigurationError(f"{where}: constants for fields {cls.__name__} does not have: {sorted(constants)}")
    return EventLayout(
        source=source,
        signature=abi_signature(event),
        topics=topic,
        data_words=word,
        min_data_words=word + (1 if dynamic else 0),
        fields=tuple(layouts),
    )


# ---- the generated readers -------------------------------------------------------------------------


def read_string(data: str, word: int) -> str:
    """The ABI string whose offset is in head word ``word`` of ``data``."""
    offset = int(data[64 * word : 64 * word + 64], 16) * 2
    length = int(data[offset : offset + 64], 16) * 2
    raw = data[offset + 64 : offset + 64 + length]
    if len(raw) != length:
        raise ValueError("string runs past the data")
    return bytes.fromhex(raw).decode("utf-8", errors="replace")


def read_signed(word: str) -> int:
    """A signed ABI integer from its 64 hex digits: any width is sign-extended to 256 bits (two's complement)."""
    value = int(word, 16)
    return value - (1 << 256) if value >> 255 else value


def word_text(source: tuple[str, int]) -> str:
    """A Python expression of the 64 hex digits (no ``0x``) of the word at ``source``: in ``t`` (topics) or ``d``."""
    where, index = source
    if where == "topic":
        return f"t[{index}][2:]"
    return f"d[{64 * index}:{64 * index + 64}]"


def _expression(layout: FieldLayout, constant: str, derived: str | None) -> str:
    kind, t, w = layout.kind, layout.topic, layout.word
    if kind == "constant":
        return constant
    if kind == "derived":
        assert derived is not None
        return derived
    if kind == "string":
        return f"_string(d, {w})"
    if t is not None:
        return {
            "bytes32": f"t[{t}].lower()",
            "address": f'"0x" + t[{t}][26:].lower()',
            "uint": f"int(t[{t}], 16)",
            "int": f"_signed(t[{t}][2:])",
            "bool": f"int(t[{t}], 16) != 0",
        }[kind]
    a, b = 64 * (w or 0), 64 * (w or 0) + 64
    return {
        "bytes32": f'"0x" + d[{a}:{b}]',
        "address": f'"0x" + d[{a + 24}:{b}]',
        "uint": f"int(d[{a}:{b}], 16)",
        "int": f"_signed(d[{a}:{b}])",
        "bool": f"int(d[{a}:{b}], 16) != 0",
    }[kind]


Derivation = tuple[Callable[..., Any], tuple[str, ...]]
"""A derived field's function and the fields whose 32-byte words (hex, no ``0x``) it takes, in its order."""


def fields_function(layout: EventLayout, derivations: dict[str, Derivation]) -> FieldsFn:
    """The function reading ``layout``'s own fields from (topics, data), as fast as a hand-written one.

    Generated from the layout, as :mod:`dataclasses` generates ``__init__``: one expression per field, so the
    reader slices each word once and calls nothing per field but ``int``. The source holds only integers
    from the layout and names bound here, never text from the ABI.
    """
    namespace: dict[str, Any] = {"_string": read_string, "_signed": read_signed}
    parts = []
    for i, field_layout in enumerate(layout.fields):
        derived = None
        if field_layout.kind == "derived":
            if field_layout.name not in derivations:
                raise ConfigurationError(f"{layout.source.cls.__name__}.{field_layout.name}: no derivation for it")
            function, inputs = derivations[field_layout.name]
            namespace[f"_f{i}"] = function
            words = ", ".join(word_text(layout.field(name).word_source()) for name in inputs)
            derived = f"_f{i}({words})"
        namespace[f"_c{i}"] = field_layout.value
        parts.append(_expression(field_layout, f"_c{i}", derived))
    source = f"def read(t, d):\n    return ({', '.join(parts)},)\n"
    exec(compile(source, f"<fields of {layout.name}>", "exec"), namespace)  # noqa: S102 - see the docstring
    read: FieldsFn = namespace["read"]
    return read


def descriptor(layout: EventLayout, derivations: dict[str, Derivation]) -> tuple[tuple[Any, ...], ...]:
    """The layout's fields in the compiled accelerator's terms (``_speedups.layout``): per field its kind
    (``topic_<kind>`` when indexed) and its topic or data word index; a derived field as
    ``derived:<function name>`` and the word sources of its inputs; a constant as ``constant`` and its value."""
    out: list[tuple[Any, ...]] = []
    for field_layout in layout.fields:
        if field_layout.kind == "derived":
            function, inputs = derivations[field_layout.name]
            sources = tuple(layout.field(name).word_source() for name in inputs)
            out.append((f"derived:{function.__name__}", sources))
        elif field_layout.kind == "constant":
            out.append(("constant", field_layout.value))
        elif field_layout.topic is not None:
            out.append((f"topic_{field_layout.kind}", field_layout.topic))
        else:
            out.append((field_layout.kind, field_layout.word))
    return tuple(out)
