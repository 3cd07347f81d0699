"""The Kubo-backed store against a stand-in Kubo RPC server (tests/support/kubo.py: a real HTTP server whose
hashes come from /usr/bin/ipfs_cid), including nodes that lie, fail, stall or are not there."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger_service.documents.cid import CHUNK_SIZE, cid_of_bytes
from ledger_service.documents.interface import DocumentStatus
from ledger_service.documents.kubo import KuboDocumentStore
from ledger_service.errors import (
    ConfigurationError,
    DocumentIntegrityError,
    NotFoundError,
    PayloadTooLargeError,
    RetryableError,
)
from tests.support.kubo import FakeKubo, free_port, reference_cid


@pytest.fixture
def kubo() -> Iterator[FakeKubo]:
    with FakeKubo() as server:
        yield server


def open_store(url: str, tmp_path: Path, *, timeout: float = 10.0) -> KuboDocumentStore:
    return KuboDocumentStore(url, tmp_path / "meta", timeout=httpx.Timeout(timeout))


def test_put_adds_checks_and_pins_then_read_serves_the_bytes(kubo: FakeKubo, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(2 * CHUNK_SIZE + 3)
    store = open_store(kubo.url, tmp_path)
    stored = store.put([data[:1000], data[1000:]], content_type="application/pdf")
    expected = reference_cid(data)
    assert (stored.cid.v0, stored.cid.v1, stored.size) == (expected.v0, expected.v1, len(data))
    assert kubo.blocks[expected.v0] == data
    assert kubo.pins == {expected.v0}
    add_path, add_params = kubo.calls[0]
    assert add_path == "/api/v0/add"
    assert add_params["cid-version"] == "0" and add_params["raw-leaves"] == "false"
    assert kubo.calls[1] == ("/api/v0/pin/add", {"arg": expected.v0})
    assert store.read(stored.cid) == data
    assert store.stat(stored.cid) == stored
    assert store.check(stored.cid) is DocumentStatus.OK
    store.close()


def test_the_first_content_type_stays(kubo: FakeKubo, tmp_path: Path) -> None:
    store = open_store(kubo.url, tmp_path)
    first = store.put([b"a,b\n1,2\n"], content_type="text/csv")
    again = store.put([b"a,b\n1,2\n"], content_type="text/plain")
    assert again == first and again.content_type == "text/csv"


def test_a_node_that_stores_under_another_cid_is_refused_and_nothing_is_pinned(tmp_path: Path) -> None:
    with FakeKubo(lie_about_hash=True) as kubo:
        store = open_store(kubo.url, tmp_path)
        with pytest.raises(DocumentIntegrityError, match=cid_of_bytes(b"report").v0):
            store.put([b"report"], content_type="text/plain")
        assert kubo.pins == set()
        assert store.stat(cid_of_bytes(b"report")) is None


def test_a_node_that_serves_other_bytes_is_caught(tmp_path: Path) -> None:
    with FakeKubo(wrong_bytes=True) as kubo:
        store = open_store(kubo.url, tmp_path)
        stored = store.put([b"photo of the parcel"], content_type="image/jpeg")
        with pytest.raises(DocumentIntegrityError, match=stored.cid.v0):
            store.read(stored.cid)
        assert store.check(stored.cid) is DocumentStatus.CORRUPT


def test_a_document_the_node_does_not_hold_is_missing(kubo: FakeKubo, tmp_path: Path) -> None:
    store = open_store(kubo.url, tmp_path)
    cid = cid_of_bytes(b"never added")
    assert store.stat(cid) is None
    assert store.check(cid) is DocumentStatus.MISSING
    with pytest.raises(NotFoundError, match=cid.v0):
        store.read(cid)
    assert kubo.calls[-1] == ("/api/v0/cat", {"arg": cid.v0, "offline": "true"})


def test_too_large_is_refused_before_anything_reaches_the_node(kubo: FakeKubo, tmp_path: Path) -> None:
    store = open_store(kubo.url, tmp_path)
    with pytest.raises(PayloadTooLargeError):
        store.put([b"x" * 600, b"x" * 600], content_type="text/plain", max_bytes=1000)
    assert kubo.calls == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_unreachable_node_is_retryable_and_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = open_store(url, tmp_path)
    with pytest.raises(RetryableError, match=f"{url}/api/v0/add"):
        store.put([b"x"], content_type="text/plain")
    with pytest.raises(RetryableError, match=f"{url}/api/v0/cat"):
        store.read(cid_of_bytes(b"x"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_failing_node_is_retryable(tmp_path: Path) -> None:
    with FakeKubo(fail_status=500) as kubo:
        store = open_store(kubo.url, tmp_path)
        with pytest.raises(RetryableError, match=r"failed \(500\)") as caught:
            store.put([b"x"], content_type="text/plain")
        assert "stand-in failure" not in str(caught.value)  # the node's own text goes to the log only


def test_a_node_that_does_not_answer_in_time_is_retryable(tmp_path: Path) -> None:
    with FakeKubo(delay=2.0) as kubo:
        store = open_store(kubo.url, tmp_path, timeout=0.3)
        with pytest.raises(RetryableError, match="did not answer in time"):
            store.put([b"x"], content_type="text/plain")
        with pytest.raises(RetryableError, match="did not answer in time"):
            store.read(cid_of_bytes(b"x"))


def test_a_url_that_is_not_kubo_s_rpc_api_is_a_configuration_error(kubo: FakeKubo, tmp_path: Path) -> None:
    store = open_store(kubo.url + "/gateway", tmp_path)  # every path under it is a 404
    with pytest.raises(ConfigurationError, match="LEDGER_IPFS_API_URL"):
        store.put([b"x"], content_type="text/plain")


def test_remove_unpins_and_forgets_the_metadata(kubo: FakeKubo, tmp_path: Path) -> None:
    store = open_store(kubo.url, tmp_path)
    stored = store.put([b"a failed action's report"], content_type="application/json")
    store.remove(stored.cid)
    assert kubo.pins == set() and store.stat(stored.cid) is None
    store.remove(stored.cid)  # Kubo's "not pinned": nothing to do
    assert kubo.calls[-1] == ("/api/v0/pin/rm", {"arg": stored.cid.v0})
    store.close()
