"""A flaky node: the indexer behind a fault-injecting proxy survives and ends with an exact index."""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any

import pytest

from ledger_service.errors import FatalError, RetryableError
from ledger_service.indexer.decode import Decoder, MalformedLogError, ScannedRows
from ledger_service.indexer.rpc import (
    BlockOutOfRange,
    RangeTooLarge,
    RetryPolicy,
    RpcClient,
    RpcFatalError,
    RpcRetryableError,
    RpcTimeoutError,
    classify_error,
)
from ledger_service.indexer.sync import NewBlocks, Reorg, SyncUpdate
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, make_indexer_for, reference_dump, wait_until_indexed
from tests.support.activity import mine
from tests.support.chain import ARTIFACTS
from tests.support.faultproxy import FAULTS, TOO_LARGE, FaultProxy, _request


@pytest.mark.parametrize(
    ("error", "method", "expected"),
    [
        ({"code": -32005, "message": "query returned more than 10000 results"}, "eth_getLogs", RangeTooLarge),
        ({"code": -32602, "message": "Log response size exceeded. You can make ..."}, "eth_getLogs", RangeTooLarge),
        ({"code": -32000, "message": "exceed maximum block range: 5000"}, "eth_getLogs", RangeTooLarge),
        (
            {"code": -32602, "message": "query exceeds max results 20000, retry with the range 5-9"},
            "eth_getLogs",
            RangeTooLarge,
        ),
        ({"code": -32000, "message": "block range is too wide"}, "eth_getLogs", RangeTooLarge),
        ({"code": -32602, "message": "eth_getLogs is limited to a 10,000 range"}, "eth_getLogs", RangeTooLarge),
        (
            {"code": -32005, "message": "daily request count exceeded, request rate limited"},
            "eth_call",
            RpcRetryableError,
        ),
        ({"code": -32603, "message": "internal error"}, "eth_getBlockByNumber", RpcRetryableError),
        ({"code": -32000, "message": "header not found"}, "eth_getBlockByNumber", RpcRetryableError),
        ({"code": -32601, "message": "the method eth_foo does not exist"}, "eth_foo", RpcFatalError),
        ({"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"}, "eth_getLogs", RpcFatalError),
        ("garbage", "eth_chainId", RpcRetryableError),
    ],
)
def test_json_rpc_errors_are_classified_by_what_the_caller_should_do(
    error: object, method: str, expected: type[Exception]
) -> None:
    classified = classify_error(error, method=method)
    assert type(classified) is expected
    assert isinstance(classified, RetryableError if expected is not RpcFatalError else FatalError)


def test_the_client_retries_each_fault_kind_and_reports_exhaustion(chain: Chain) -> None:
    policy = RetryPolicy(attempts=40, base_delay=0.001, max_delay=0.01)
    for fault in FAULTS:
        with FaultProxy(chain.node.url, rates={fault: 0.5}, budget=10, delay=0.3, seed=7) as proxy:
            with RpcClient(proxy.url, timeout=0.15, retry=policy) as rpc:
                for _ in range(6):
                    assert rpc.latest().number <= chain.head
                    assert rpc.chain_id() == 31337
            assert proxy.injected[fault] > 0, fault
    with (
        FaultProxy(chain.node.url, rates={"500": 1.0}, budget=100) as proxy,
        RpcClient(proxy.url, retry=RetryPolicy(attempts=3, base_delay=0.001)) as rpc,
        pytest.raises(RpcRetryableError, match=r"HTTP 500 .*gave up after 3 attempts"),
    ):
        rpc.chain_id()
    with (
        FaultProxy(chain.node.url, rates={"timeout": 1.0}, budget=1, delay=0.5) as proxy,
        RpcClient(proxy.url, timeout=0.1) as rpc,
        pytest.raises(RpcTimeoutError),
    ):
        rpc.get_logs_once(addresses=[chain.deployed.ledger.address], from_block=0, to_block=1)
    with FaultProxy(chain.node.url, reject_batches=True) as proxy, RpcClient(proxy.url) as rpc:
        headers = rpc.headers([1, 2, 3, chain.head + 100])  # falls back to one call per block
        assert sorted(headers) == [1, 2, 3] and headers[2].parent_hash == headers[1].hash
    with FaultProxy(chain.node.url, max_log_blocks=1) as proxy, RpcClient(proxy.url) as rpc:
        for _ in range(len(TOO_LARGE) * 3):
            with pytest.raises(RangeTooLarge):
                rpc.get_logs(addresses=[chain.deployed.ledger.address], from_block=0, to_block=5)


def test_answers_read_from_their_bytes_survive_each_fault_kind(chain: Chain) -> None:
    """A fetch process reads eth_getLogs answers from their bytes (Decoder.scan_response): a truncated, cut or
    erroneous answer is left to the parser, which reports it, and the retry gets the same rows."""
    chain.activity.lifecycle()
    chain.activity.bulk(events=200, items=4, batch=100)
    ledger, escrow = chain.deployed.ledger.address, chain.deployed.escrow.address
    decoder = Decoder.from_artifacts(ARTIFACTS, ledger_address=ledger, escrow_address=escrow)
    head = chain.head
    with RpcClient(chain.node.url) as rpc:
        logs, _ = rpc.get_logs(addresses=[ledger, escrow], from_block=0, to_block=head)
    expected = decoder.decode_rows(logs)
    policy = RetryPolicy(attempts=40, base_delay=0.001, max_delay=0.01)
    for fault in ("429", "500", "truncated", "malformed", "rpc_internal"):
        with (
            FaultProxy(chain.node.url, rates={fault: 0.5}, budget=10, seed=11) as proxy,
            RpcClient(proxy.url, retry=policy) as rpc,
        ):
            for _ in range(6):
                got, _ = rpc.get_logs(
                    addresses=[ledger, escrow], from_block=0, to_block=head, scan=decoder.scan_response
                )
                assert isinstance(got, ScannedRows) and got.rows == expected and got.logs == len(logs), fault
            assert proxy.injected[fault] > 0, fault


def test_what_a_scan_raises_is_not_retried_as_an_rpc_failure(chain: Chain) -> None:
    """A malformed log found while reading an answer reaches the caller as it is, at once: the fetch loop
    retries it its own way (and a range shrinks), as when json.loads and the Python decoder find it."""
    calls: list[int] = []

    def scan(raw: bytes, request_id: int) -> None:
        calls.append(request_id)
        raise MalformedLogError("cannot decode the log at block 1 log index 0: test")

    with RpcClient(chain.node.url, retry=RetryPolicy(attempts=5, base_delay=0.001)) as rpc:
        for call in (rpc.get_logs, rpc.get_logs_once):
            with pytest.raises(MalformedLogError, match="test"):
                call(addresses=[chain.deployed.ledger.address], from_block=0, to_block=chain.head, scan=scan)
    assert len(calls) == 2


def test_the_indexer_survives_a_flaky_node_and_the_final_index_is_exact(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    items = chain.activity.register(3)
    chain.activity.bulk(events=1500, items=6, batch=100)
    rates = {
        "timeout": 0.02,
        "429": 0.05,
        "500": 0.05,
        "truncated": 0.05,
        "malformed": 0.05,
        "rpc_internal": 0.05,
        "older_head": 0.15,
    }
    store = Store.open(store_url)
    updates: list[SyncUpdate] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    with FaultProxy(
        chain.node.url, rates=rates, budget=400, delay=0.4, max_log_blocks=6, seed=3, first=FAULTS
    ) as proxy:
        rpc = RpcClient(proxy.url, timeout=0.2, retry=RetryPolicy(attempts=50, base_delay=0.005, max_delay=0.05))
        # one range per transaction (max_batch_events=1): the applied ranges show the requests' sizes
        indexer = make_indexer_for(chain, store, rpc=rpc, finality=6, max_batch_events=1)

        def follow() -> None:
            try:
                updates.extend(indexer.follow(stop=stop, poll_interval=0.02))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=follow)
        thread.start()
        try:
            for round_ in range(4):
                chain.activity.lifecycle()
                chain.activity.send(chain.activity.record_batch_call(items, 50), 3)
                if round_ == 2:
                    wait_until_indexed(chain, store, errors, timeout=60)
                    chain.node.rpc("anvil_reorg", [3, [[chain.activity.reorg_tx(items, 9), 1]]])
            wait_until_indexed(chain, store, errors, timeout=60)
        finally:
            stop.set()
            thread.join(timeout=60)
            rpc.close()
    try:
        assert not errors, errors
        for fault in (*FAULTS, "range_too_large"):
            assert proxy.injected[fault] > 0, (fault, proxy.injected, proxy.methods, len(updates))
        assert any(isinstance(u, Reorg) for u in updates)
        assert all(len(u.range) <= 6 for u in updates if isinstance(u, NewBlocks))
        assert store.dump() == reference_dump(chain, finality=6)
    finally:
        store.close()


def test_certificates_are_verified_for_https_nodes_only() -> None:
    """A plain-http node skips loading the CA bundle (~30 ms a client); an https node is always verified."""
    for url, mode in (("http://127.0.0.1:8545", ssl.CERT_NONE), ("https://rpc.example.org", ssl.CERT_REQUIRED)):
        with RpcClient(url) as rpc:
            assert rpc._client._transport._pool._ssl_context.verify_mode == mode, url  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32602, "message": "BlockOutOfRangeError: block height is 252 but requested was 253"},  # anvil
        {"code": -32000, "message": "block range extends beyond current head block"},  # geth
        {"code": -32000, "message": "header not found"},  # geth, older
        {"code": -32000, "message": "unknown block"},  # geth, reth
        {"code": -32001, "message": "block not found"},  # erigon, besu
        {"code": -32001, "message": "Block 253 could not be found"},  # nethermind
    ],
)
def test_a_block_beyond_the_head_in_eth_get_logs_is_a_race_with_a_reorg(error: dict[str, object]) -> None:
    """The chain shrank between the head read and eth_getLogs: re-read the head (not fatal, not retried as is)."""
    classified = classify_error(error, method="eth_getLogs")
    assert type(classified) is BlockOutOfRange
    assert isinstance(classified, RetryableError) and not isinstance(classified, RangeTooLarge)


class ShrinkingNode(FaultProxy):
    """Once armed, rolls the chain back to block ``to`` just before it forwards the next eth_getLogs: the
    indexer read the head and the headers of a longer chain, and then asks for logs of blocks that are gone."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.to: int | None = None
        self.shrunk = 0
        self.log_errors: list[object] = []

    def _forward(self, payload: Any) -> bytes:
        if isinstance(payload, dict) and payload.get("method") == "eth_getLogs" and self.to is not None:
            head = int(self._client.post(self.upstream, json=_request("eth_blockNumber", [])).json()["result"], 16)
            self._client.post(self.upstream, json=_request("anvil_rollback", [head - self.to]))
            self.to = None
            self.shrunk += 1
            answer = super()._forward(payload)
            self.log_errors.append(json.loads(answer).get("error"))
            return answer
        return super()._forward(payload)


def test_a_chain_that_shrinks_between_the_head_read_and_eth_get_logs_does_not_stop_the_follower(
    chain: Chain, store_url: str
) -> None:
    chain.activity.lifecycle()
    items = chain.activity.register(2)
    store = Store.open(store_url)
    updates: list[SyncUpdate] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    with ShrinkingNode(chain.node.url) as proxy:
        indexer = make_indexer_for(chain, store, rpc_url=proxy.url, finality=6)

        def follow() -> None:
            try:
                updates.extend(indexer.follow(stop=stop, poll_interval=0.02))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=follow)
        thread.start()
        try:
            wait_until_indexed(chain, store, errors)
            for below in (0, 2):  # back to the checkpoint (the node is then level), or below it (a reorg)
                checkpoint = store.checkpoint()
                assert checkpoint is not None
                proxy.to = checkpoint.number - below
                mine(chain.node, 2)  # no transaction of ours to lose in the rollback
                deadline = time.monotonic() + 30
                while proxy.to is not None and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert proxy.to is None, "the follower never asked for the logs"
                chain.activity.send(chain.activity.record_batch_call(items, 5 + below), 3)
                mine(chain.node, 1)
                wait_until_indexed(chain, store, errors)
                assert store.dump() == reference_dump(chain, finality=6)
        finally:
            stop.set()
            thread.join(timeout=60)
            indexer.rpc.close()
    try:
        assert not errors, errors
        assert proxy.shrunk == 2
        assert all(e is not None and "BlockOutOfRange" in str(e) for e in proxy.log_errors), proxy.log_errors
        assert [u.depth for u in updates if isinstance(u, Reorg)] == [2]
    finally:
        store.close()


def test_a_follower_in_a_long_backoff_goes_on_as_soon_as_the_node_answers_again(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    store = Store.open(store_url)
    errors: list[BaseException] = []
    stop = threading.Event()
    with FaultProxy(chain.node.url, budget=10**9) as proxy:
        rpc = RpcClient(proxy.url, retry=RetryPolicy(attempts=1))
        indexer = make_indexer_for(chain, store, rpc=rpc)
        proxy.rates = {"500": 1.0}  # the node away (behind a proxy that answers 500) from the first pass on

        def follow() -> None:
            try:
                # the first backoff (poll_interval) lasts far longer than this test waits: only a probe ends it
                for _ in indexer.follow(stop=stop, poll_interval=3600, max_backoff=3600, node_probe_s=0.05):
                    pass
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=follow)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while proxy.injected["500"] < 3 and time.monotonic() < deadline:  # the pass and two probes refused
                time.sleep(0.02)
            assert proxy.injected["500"] >= 3, proxy.injected
            assert thread.is_alive() and store.checkpoint() is None
            proxy.rates = {}
            wait_until_indexed(chain, store, errors, timeout=60)
        finally:
            stop.set()
            thread.join(timeout=60)
            rpc.close()
    try:
        assert not errors, errors
        assert not thread.is_alive()
    finally:
        store.close()
