"""Type stub of the C extension _speedups.c (the fetch process's hot path)."""

from collections.abc import Callable, Sequence
from typing import Any

def layout(topics: int, data_words: int, fields: tuple[tuple[Any, ...], ...], /) -> object: ...
def event_fields(
    layout: object, fallback: Callable[[Sequence[str], str], tuple[Any, ...]], topics: Sequence[str], data: str, /
) -> tuple[Any, ...]: ...
def keccak256(data: bytes | bytearray | memoryview, /) -> bytes: ...
def decode_item_rows(
    layout: object,
    topic0: str,
    address: str,
    type_index: int,
    logs: list[Any],
    state: list[Any],
    one: Callable[[Any, list[Any]], Any],
    /,
) -> tuple[list[Any], bool, int]: ...
def decode_response_rows(
    layout: object,
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
