"""Type stub of the C extension _speedups.c (the fetch process's hot path)."""

from collections.abc import Callable, Sequence
from typing import Any

ITEM_EVENT_NAME: str
ITEM_EVENT_LAYOUT: tuple[Any, ...]
"""(topics, data words, per field descriptor) of the event this code reads: see layout.descriptor()."""

def item_event_fields(
    fallback: Callable[[Sequence[str], str], tuple[Any, ...]], topics: Sequence[str], data: str, /
) -> tuple[Any, ...]: ...
def keccak256(data: bytes | bytearray | memoryview, /) -> bytes: ...
def decode_item_rows(
    topic0: str,
    address: str,
    type_index: int,
    logs: list[Any],
    state: list[Any],
    one: Callable[[Any, list[Any]], Any],
    /,
) -> tuple[list[Any], bool, int]: ...
def decode_response_rows(
    topic0: str,
    address: str,
    type_index: int,
    raw: bytes,
    request_id: int,
    state: list[Any],
    one: Callable[[Any, list[Any]], Any],
    loads: Callable[[bytes], Any],
    /,
) -> tuple[list[Any], bool, int, int] | None: ...
