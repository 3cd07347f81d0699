"""The compiled fetch-process hot path (ledger_service/indexer/_speedups.c) against the Python code it replaces."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sha3 import keccak_256  # type: ignore[import-untyped]

from ledger_service.core.rows import EVENT_TYPES
from ledger_service.indexer import decode
from ledger_service.indexer.decode import Decoder, MalformedLogError, load_abis
from ledger_service.indexer.rpc import RpcClient
from tests.support.activity import Activity
from tests.support.chain import ARTIFACTS, Anvil, deploy_all

pytest.importorskip("ledger_service.indexer._speedups")  # skips the module where the accelerator is not built
from ledger_service.indexer import _speedups

_reference = Decoder(abis=load_abis(ARTIFACTS), ledger_address="0x" + "11" * 20, escrow_address="0x" + "22" * 20)
_item_event_fields_py = _reference.python_fields("ItemEventRecorded")
"""The Python reader of ItemEventRecorded, made from the ABI: the reference of the compiled one."""
LAYOUT = _reference.fields("ItemEventRecorded").args[0]  # type: ignore[attr-defined]
"""ItemEventRecorded's layout from the ABI, compiled (``_speedups.layout``)."""
compiled = functools.partial(_speedups.event_fields, LAYOUT, _item_event_fields_py)


def test_the_indexer_runs_the_compiled_decoder() -> None:
    """The bootstrap builds the extension (Debian's nettle-dev and gcc): a build that silently fell back to the
    Python code would make every backfill about a third slower. The decoder uses it for the ABI's
    ItemEventRecorded: the layout the C code reads is the one the ABI gives."""
    assert decode.COMPILED
    assert _reference.compiled
    assert _reference.fields("ItemEventRecorded").func is _speedups.event_fields  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_keccak256_equals_pysha3(data: bytes) -> None:
    assert _speedups.keccak256(data) == keccak_256(data).digest()


@pytest.mark.parametrize("size", [0, 1, 95, 96, 135, 136, 137, 255, 256, 271, 272, 273, 1000])
def test_keccak256_at_the_block_boundaries(size: int) -> None:
    data = bytes(range(256)) * 4
    assert _speedups.keccak256(data[:size]) == keccak_256(data[:size]).digest()
    assert _speedups.keccak256(bytearray(data[:size])) == keccak_256(data[:size]).digest()


def _log(
    item: bytes, actor: bytes, words: list[int], docs: bytes, prev: bytes, *, valid: bool
) -> tuple[list[str], str]:
    """(topics, data hex without 0x) of an ItemEventRecorded log; ``valid``: its eventHash recomputes."""
    seq, step, disp, ts = words
    head = b"".join(w.to_bytes(32, "big") for w in (seq, step, disp))
    preimage = prev + item + head + bytes(12) + actor + keccak_256(docs).digest() + ts.to_bytes(32, "big")
    event = keccak_256(preimage).digest() if valid else keccak_256(preimage + b"x").digest()
    data = head + docs + ts.to_bytes(32, "big") + prev + event
    return ["0x" + "ab" * 32, "0x" + item.hex(), "0x" + bytes(12).hex() + actor.hex()], data.hex()


def _outcome(fn: Any, topics: Any, data: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(topics, data))
    except Exception as exc:  # the same exception class on both paths
        return ("raised", type(exc))


b32 = st.binary(min_size=32, max_size=32)
fitting = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**64 - 1))
any_word = st.one_of(
    st.integers(0, 2**256 - 1),
    st.integers(2**64, 2**96),  # just past a uint64: only the high digits of the word's low half are set
    st.integers(256, 2**64),  # past a uint8
    st.sampled_from([255, 256, 2**64 - 1, 2**64, 2**255]),
)
wide = st.tuples(any_word, any_word, any_word, any_word)


@settings(max_examples=400, deadline=None)
@given(
    item=b32,
    actor=st.binary(min_size=20, max_size=20),
    words=st.one_of(fitting, wide),
    docs=st.binary(min_size=96, max_size=96),
    prev=b32,
    valid=st.booleans(),
    extra_words=st.integers(0, 2),
    upper_topics=st.booleans(),
)
def test_canonical_logs_decode_as_in_python(
    item: bytes,
    actor: bytes,
    words: tuple[int, int, int, int],
    docs: bytes,
    prev: bytes,
    valid: bool,
    extra_words: int,
    upper_topics: bool,
) -> None:
    topics, data = _log(item, actor, list(words), docs, prev, valid=valid)
    data += "00" * 32 * extra_words
    if upper_topics:
        topics = [t[:2] + t[2:].upper() for t in topics]
    fast = compiled(topics, data)
    assert fast == _item_event_fields_py(topics, data)
    assert [type(v) for v in fast] == [type(v) for v in _item_event_fields_py(topics, data)]
    if valid and words[1:3] == (words[1] & 255, words[2] & 255) and max(words[0], words[3]) < 2**64:
        assert fast[11] is True


@pytest.mark.parametrize("word", [0, 1, 2, 3])
@pytest.mark.parametrize("value", [255, 256, 2**64 - 1, 2**64, 2**95, 2**191, 2**255])
def test_a_word_wider_than_its_type_fails_the_check_as_in_python(word: int, value: int) -> None:
    """The eventHash is computed over the wide word (as a node could log it): the check fails it anyway."""
    words = [1, 2, 3, 4]
    words[word] = value
    topics, data = _log(bytes(range(32)), bytes(range(20)), words, bytes(96), bytes(32), valid=True)
    fast = compiled(topics, data)
    assert fast == _item_event_fields_py(topics, data)
    assert fast[11] is (value < (2**64 if word in (0, 3) else 256))


def _mutations(topics: list[str], data: str) -> list[tuple[Any, Any]]:
    t1, t2 = topics[1], topics[2]
    return [
        ([topics[0], "0X" + t1[2:], t2], data),  # prefix case
        ([topics[0], t1, t2[:-1]], data),  # short topic
        ([topics[0], t1 + "0", t2], data),  # long topic
        ([topics[0], t1[:10] + "zz" + t1[12:], t2], data),  # not hex in the item
        ([topics[0], t1, t2[:30] + " " + t2[31:]], data),  # not hex in the actor
        ([topics[0], t1, t2[:26] + "é" + t2[27:]], data),  # not ASCII
        (tuple(topics), data),  # a tuple is read like a list
        (topics[:2], data),  # too few topics
        ([topics[0], t1, 5], data),  # not a string
        (topics, data[:-64]),  # eight words
        (topics, data[:575]),  # odd length
        (topics, data.upper()),  # the caller lowercases; uppercase is not canonical
        (topics, data[:100] + "g" + data[101:]),  # not hex in the data
        (topics, data[:64] + "_" + data[65:]),  # int() reads underscores
        (topics, " " + data[1:]),  # int() reads spaces
        (topics, data[:64] + "+" + data[65:]),
        (topics, data.encode()),  # bytes, not str
        (topics, data[:200] + "é" + data[201:]),
    ]


@settings(max_examples=100, deadline=None)
@given(item=b32, actor=st.binary(min_size=20, max_size=20), words=fitting, docs=st.binary(min_size=96, max_size=96))
def test_other_forms_take_the_python_path(
    item: bytes, actor: bytes, words: tuple[int, int, int, int], docs: bytes
) -> None:
    topics, data = _log(item, actor, list(words), docs, bytes(32), valid=True)
    for bad_topics, bad_data in _mutations(topics, data):
        assert _outcome(compiled, bad_topics, bad_data) == _outcome(_item_event_fields_py, bad_topics, bad_data)


def test_the_python_path_is_not_called_for_a_canonical_log() -> None:
    topics, data = _log(bytes(32), bytes(20), [1, 2, 3, 4], bytes(96), bytes(32), valid=True)
    calls: list[Any] = []

    def fallback(t: Any, d: Any) -> tuple[Any, ...]:
        calls.append((t, d))
        return ()

    assert _speedups.event_fields(LAYOUT, fallback, topics, data)[11] is True
    assert calls == []
    assert _speedups.event_fields(LAYOUT, fallback, topics[:2], data) == ()
    assert calls == [(topics[:2], data)]
    with pytest.raises(TypeError, match="4 arguments"):
        _speedups.event_fields(LAYOUT, fallback, topics)  # type: ignore[call-arg]


# ---- the whole decoding loop (decode_item_rows) against Decoder's Python loop --------------------


@pytest.fixture(scope="module")
def node_logs(anvil: Anvil) -> tuple[Decoder, list[dict[str, Any]]]:
    """Every event type of both contracts, as eth_getLogs returns them, and a decoder of that deployment."""
    deployed = deploy_all(anvil)
    activity = Activity(deployed)
    activity.lifecycle()
    activity.bulk(events=120, items=3)
    decoder = Decoder(
        abis=load_abis(ARTIFACTS), ledger_address=deployed.ledger.address, escrow_address=deployed.escrow.address
    )
    with RpcClient(str(deployed.w3.provider.endpoint_uri)) as rpc:  # type: ignore[attr-defined]
        raw, _ = rpc.get_logs(
            addresses=[deployed.ledger.address, deployed.escrow.address],
            from_block=deployed.deploy_block,
            to_block=deployed.w3.eth.block_number,
        )
    return decoder, raw


def _both(decoder: Decoder, logs: list[Any]) -> list[tuple[str, Any, int]]:
    """(outcome, rows or the error, skipped) of the compiled loop and of the Python loop."""
    results: list[tuple[str, Any, int]] = []
    fast = decoder._fast_rows
    for compiled_loop in (True, False):
        decoder._fast_rows = fast if compiled_loop else None
        decoder.skipped = 0
        try:
            results.append(("ok", decoder.decode_rows(copy.deepcopy(logs)), decoder.skipped))
        except MalformedLogError as exc:
            results.append(("raised", str(exc), 0))
        finally:
            decoder._fast_rows = fast
    return results


def test_the_compiled_loop_decodes_a_node_answer_as_the_python_loop(
    node_logs: tuple[Decoder, list[dict[str, Any]]],
) -> None:
    decoder, raw = node_logs
    assert decoder._fast_rows is not None
    fast, slow = _both(decoder, raw)
    assert fast == slow
    names = {EVENT_TYPES[row[0]].__name__ for row in fast[1]}
    assert {"ItemEventRecorded", "ItemRegistered", "SaleRecorded", "EscrowSettled"} <= names
    reordered = raw[len(raw) // 2 :] + raw[: len(raw) // 2]
    fast, slow = _both(decoder, reordered)
    assert fast == slow and fast[1] == _both(decoder, raw)[0][1]  # sorted back into the chain's order


def _edits(log: dict[str, Any], other: dict[str, Any]) -> list[Any]:
    """Ways a node's answer can differ from the canonical form the compiled loop reads."""
    item = {k: v for k, v in log.items()}
    return [
        {**item, "blockHash": item["blockHash"].upper().replace("0X", "0x")},
        {**item, "blockHash": other["blockHash"], "blockNumber": hex(int(item["blockNumber"], 16) + 7)},
        {**item, "blockNumber": "0x_" + item["blockNumber"][2:]},
        {**item, "blockNumber": item["blockNumber"].upper()},
        {**item, "transactionIndex": " " + item["transactionIndex"]},
        {**item, "transactionHash": other["transactionHash"], "transactionIndex": "0x7"},
        {**item, "logIndex": "0x" + "f" * 20},
        {**item, "logIndex": 5},
        {**item, "removed": True},
        {**item, "removed": 0},
        {**item, "address": item["address"].upper().replace("0X", "0x")},
        {**item, "address": "0x" + "12" * 20},
        {**item, "data": item["data"].upper().replace("0X", "0x")},
        {**item, "data": item["data"] + "00" * 32},
        {**item, "data": item["data"][:-64]},
        {**item, "data": "0X" + item["data"][2:]},
        {**item, "topics": [item["topics"][0].upper().replace("0X", "0x"), *item["topics"][1:]]},
        {**item, "topics": item["topics"][:2]},
        {**item, "topics": tuple(item["topics"])},
        {**item, "topics": []},
        {k: v for k, v in item.items() if k != "blockHash"},
        {k: v for k, v in item.items() if k != "transactionIndex"},
        {k: v for k, v in item.items() if k != "removed"},
        "not a log",
    ]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_compiled_loop_agrees_with_the_python_loop_on_every_form(
    node_logs: tuple[Decoder, list[dict[str, Any]]], data: st.DataObject
) -> None:
    decoder, raw = node_logs
    items = [log for log in raw if log["topics"][0] in decoder._fast_rows.args[1:2]]  # type: ignore[union-attr]
    start = data.draw(st.integers(0, len(raw) - 8), label="start")
    logs = [dict(log) for log in raw[start : start + 8]]
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(logs) - 1), label="at")
        base = data.draw(st.sampled_from(items), label="item event")
        edits = _edits(base, data.draw(st.sampled_from(raw), label="other"))
        logs.insert(at, data.draw(st.sampled_from(edits), label="edit"))
    fast, slow = _both(decoder, logs)
    assert fast == slow


# ---- an answer read from its bytes (Decoder.scan_response) ------------------------------------------------


def _answer(logs: list[Any], request_id: int, **dumps: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": logs}, **dumps).encode()


def _parsed_outcome(decoder: Decoder, raw: bytes, request_id: int) -> tuple[Any, ...]:
    """What the parsing path makes of an answer: RpcClient.call_once's checks, then the Python loop."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return ("not json",)
    if (
        not isinstance(parsed, dict)
        or parsed.get("error") is not None
        or "result" not in parsed
        or parsed.get("id") != request_id
        or not isinstance(parsed["result"], list)
    ):
        return ("not an answer",)
    fast = decoder._fast_rows
    decoder._fast_rows = None
    decoder.skipped = 0
    try:
        return ("ok", decoder.decode_rows(parsed["result"]), decoder.skipped, len(parsed["result"]))
    except MalformedLogError as exc:
        return ("raised", str(exc))
    finally:
        decoder._fast_rows = fast


def _scanned_outcome(decoder: Decoder, raw: bytes, request_id: int) -> tuple[Any, ...] | None:
    decoder.skipped = 0
    try:
        scanned = decoder.scan_response(raw, request_id)
    except MalformedLogError as exc:
        return ("raised", str(exc))
    return None if scanned is None else ("ok", scanned.rows, decoder.skipped, scanned.logs)


def _agree(decoder: Decoder, raw: bytes, request_id: int) -> tuple[Any, ...] | None:
    """Asserts that a scan either declines the answer or gives what parsing it gives; returns the scan's outcome."""
    scanned = _scanned_outcome(decoder, raw, request_id)
    if scanned is not None:
        assert scanned == _parsed_outcome(decoder, raw, request_id)
    return scanned


def test_a_node_answer_read_from_its_bytes_decodes_as_the_parsed_answer(
    node_logs: tuple[Decoder, list[dict[str, Any]]], anvil: Anvil
) -> None:
    decoder, logs = node_logs
    addresses = sorted({log["address"] for log in logs})
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": 41, "method": "eth_getLogs", "params": [{"address": addresses}]}
    request["params"][0].update(fromBlock=logs[0]["blockNumber"], toBlock=logs[-1]["blockNumber"])
    raw = httpx.post(anvil.url, json=request).content  # the node's own bytes
    calls: list[Any] = []
    one = decoder._one_row

    def recording(raw: Any, state: list[Any]) -> Any:
        calls.append(raw)
        return one(raw, state)

    decoder._one_row = recording  # type: ignore[method-assign]  # records the Python loop's calls
    try:
        scanned = _agree(decoder, raw, 41)
    finally:
        decoder._one_row = one  # type: ignore[method-assign]
    assert scanned is not None and scanned[3] == len(logs)
    item_events = [log for log in logs if log["topics"][0] in decoder._fast_rows.args[1:2]]  # type: ignore[union-attr]
    assert item_events and len(calls) == len(logs) - len(item_events)  # C read every item event itself
    assert _scanned_outcome(decoder, raw, 42) is None  # another request's answer
    assert _agree(decoder, _answer([], 3, separators=(",", ":")), 3) == ("ok", [], 0, 0)


def _byte_edits(raw: bytes, data: st.DataObject) -> bytes:
    for _ in range(data.draw(st.sampled_from([0, 0, 0, 1, 2, 3]), label="byte edits")):
        at = data.draw(st.integers(0, len(raw)), label="at")
        kind = data.draw(st.sampled_from(["insert", "delete", "truncate"]), label="kind")
        if kind == "insert":
            raw = (
                raw[:at]
                + data.draw(st.sampled_from(list(b' \n\t,:"\\}]{[x0A\x00\xe9')), label="byte").to_bytes(1, "big")
                + raw[at:]
            )
        elif kind == "delete":
            raw = raw[:at] + raw[at + 1 :]
        else:
            raw = raw[:at]
    return raw


def _text_edits(logs: list[dict[str, Any]], data: st.DataObject) -> bytes:
    style: dict[str, Any] = data.draw(
        st.sampled_from(
            [
                {"separators": (",", ":")},  # as nodes send it, most often
                {"separators": (",", ":")},
                {"separators": (",", ":")},
                {},
                {"indent": 1},
                {"separators": (",", ":"), "sort_keys": True},
            ]
        ),
        label="style",
    )
    raw = _answer(logs, 9, **style)
    text = raw.decode()
    edit = data.draw(
        st.sampled_from(
            [
                "none",
                "escape",
                "duplicate",
                "extra number",
                "extra object",
                "non-ascii",
                "error",
                "wrong id",
                "envelope order",
                "trailing",
            ]
        ),
        label="text edit",
    )
    if edit == "escape":  # the same value, escaped: json.loads reads the same log
        text = text.replace('"address":"0x', '"address":"\\u0030x', 1).replace(
            '"address": "0x', '"address": "\\u0030x', 1
        )
    elif edit == "duplicate":  # an earlier duplicate: json.loads keeps the last one
        text = text.replace('{"address"', '{"blockHash":"0x' + "00" * 32 + '","address"', 1)
    elif edit == "extra number":
        text = text.replace('"removed"', '"extra":12.5e3,"removed"', 1)
    elif edit == "extra object":
        text = text.replace('"removed"', '"extra":{"a":[1,"]}"]},"removed"', 1)
    elif edit == "non-ascii":
        text = text.replace('"removed"', '"note":"r\u00e9sum\u00e9","removed"', 1)
    elif edit == "error":
        text = text[:-1] + ',"error":{"code":-32005,"message":"too many"}}'
    elif edit == "wrong id":
        text = text.replace('"id":9', '"id":10', 1).replace('"id": 9', '"id": 10', 1)
    elif edit == "envelope order":
        text = text.replace('{"jsonrpc":"2.0","id":9,', '{"id":9,"jsonrpc":"2.0",', 1)
    elif edit == "trailing":
        text = text + data.draw(st.sampled_from([" \n", "x", "{}", "]"]), label="trailing")
    return text.encode()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_reading_an_answer_from_its_bytes_agrees_with_parsing_it_on_every_form(
    node_logs: tuple[Decoder, list[dict[str, Any]]], data: st.DataObject
) -> None:
    decoder, raw_logs = node_logs
    items = [log for log in raw_logs if log["topics"][0] in decoder._fast_rows.args[1:2]]  # type: ignore[union-attr]
    start = data.draw(st.integers(0, len(raw_logs) - 8), label="start")
    logs: list[Any] = [dict(log) for log in raw_logs[start : start + 8]]
    for _ in range(data.draw(st.integers(0, 2), label="edits")):
        at = data.draw(st.integers(0, len(logs)), label="at")
        base = data.draw(st.sampled_from(items), label="item event")
        logs.insert(at, data.draw(st.sampled_from(_edits(base, data.draw(st.sampled_from(raw_logs))))))
    if data.draw(st.booleans(), label="reorder keys"):
        logs = [dict(reversed(log.items())) if isinstance(log, dict) else log for log in logs]
    raw = _byte_edits(_text_edits(logs, data), data)
    _agree(decoder, raw, 9)


def test_whitespace_inside_the_result_is_read_and_another_envelope_is_parsed(
    node_logs: tuple[Decoder, list[dict[str, Any]]],
) -> None:
    decoder, logs = node_logs
    for style in ({}, {"indent": 2}, {"separators": (" , ", " : ")}):
        spaced = " [ " + " ,\n".join(json.dumps(log, **style) for log in logs) + " ] "
        raw = ('\n {"jsonrpc":"2.0","id":77,"result":' + spaced + "} \n").encode()
        assert _agree(decoder, raw, 77) is not None, style
    assert _scanned_outcome(decoder, _answer(logs, 77, indent=1), 77) is None  # the caller parses it


def _compact_item_events(node_logs: tuple[Decoder, list[dict[str, Any]]]) -> tuple[Decoder, list[dict[str, Any]]]:
    decoder, logs = node_logs
    topic0 = decoder._fast_rows.args[1]  # type: ignore[union-attr]
    return decoder, [dict(log) for log in logs if log["topics"][0] == topic0][:4]


def _same_block_other_number(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The second log claims the first's block hash with another number: the parsed path reuses the number read
    for that hash, and so must the scan."""
    second = {**logs[1], "blockHash": logs[0]["blockHash"], "blockNumber": hex(int(logs[0]["blockNumber"], 16) + 5)}
    return [logs[0], second, *logs[2:]]


@pytest.mark.parametrize(
    ("edit", "read"),
    [
        (lambda text, logs: text + " \n", True),
        (lambda text, logs: text + "x", False),
        (lambda text, logs: text + "}", False),
        (lambda text, logs: text[:-2] + ",]}", False),
        (lambda text, logs: text[:-1] + ',"error":{"code":-32005,"message":"x"}}', False),
        (lambda text, logs: text.replace('"removed":false', '"removed":true', 1), True),
        (lambda text, logs: text.replace('"removed":false', '"removed":false,"removed":true', 1), True),
        (lambda text, logs: text.replace('"removed":false}', '"removed":false x}', 1), False),
        (lambda text, logs: text.replace('"removed":false}', '"removed":false,}', 1), False),
        (lambda text, logs: text.replace('"removed":false}]}', '"removed":false]]}', 1), False),
        (lambda text, logs: text.replace('"topics":["0x', '"topics":["0x0', 1).replace('","0x', '","', 1), True),
        (lambda text, logs: text.replace(logs[0]["topics"][0][:-4], logs[0]["topics"][0][:-4][::-1], 1), True),
        (lambda text, logs: text.replace('"data":"0x', '"data":"0x"', 1), False),
        (lambda text, logs: text.replace('"logIndex":"0x', '"logIndex":"0x\\u0030', 1), True),
    ],
)
def test_answers_the_scan_reads_or_leaves_to_the_parser(
    node_logs: tuple[Decoder, list[dict[str, Any]]], edit: Any, read: bool
) -> None:
    decoder, logs = _compact_item_events(node_logs)
    text = _answer(logs, 5, separators=(",", ":")).decode()
    raw = edit(text, logs).encode()
    assert (_agree(decoder, raw, 5) is not None) is read


def test_a_repeated_block_hash_takes_the_number_read_first(node_logs: tuple[Decoder, list[dict[str, Any]]]) -> None:
    decoder, logs = _compact_item_events(node_logs)
    raw = _answer(_same_block_other_number(logs), 5, separators=(",", ":"))
    scanned = _agree(decoder, raw, 5)
    assert scanned is not None and scanned[1][1][1][0] == int(logs[0]["blockNumber"], 16)
