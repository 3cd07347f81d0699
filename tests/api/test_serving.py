"""``ledger-api`` as production runs it: LEDGER_API_WORKERS worker processes, each with its own credential cache
(a key revoked elsewhere stops working within the cache's TTL), answering as the in-process app does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ledger_service.access import Role, create_api_key, revoke_api_key
from ledger_service.access._cache import VERIFIED_TTL_S
from ledger_service.settings import Settings
from tests.api.conftest import ApiEnv, bearer
from tests.api.flows import Flow, ok, problem
from tests.api.served import serve

ROOT = Path(__file__).resolve().parents[2]


def test_workers_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).api_workers == 1  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_API_WORKERS", "4")
    assert Settings(_env_file=None).api_workers == 4  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_API_WORKERS", "0")
    with pytest.raises(ValidationError, match="api_workers"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def served(api_env: ApiEnv) -> Iterator[str]:
    """``ledger-api`` (api.serving:main) with two workers on the test chain and database; its base URL."""
    with serve(api_env, API_WORKERS="2") as running:
        yield running.url


def _without_clock(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "checked_at"}


def test_the_workers_answer_as_the_app_does(
    served: str, client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    sold = flow.sold_and_delivered()
    url = f"/v1/items/{sold.item_id}/eligibility"
    with httpx.Client(base_url=served, timeout=10) as http:
        for headers in (sold.auth, bearer(keys["merchant"]), bearer(keys["auditor"])):
            expected = _without_clock(ok(client.get(url, headers=headers)))
            for _ in range(6):  # keep-alive: one worker; new connections: either
                assert _without_clock(ok(http.get(url, headers=headers))) == expected
                assert _without_clock(ok(httpx.get(served + url, headers=headers))) == expected
        problem(http.get(url, headers=bearer(keys["carrier"])), 403)
        problem(http.get(url, headers=bearer(keys["merchant2"])), 404)
        problem(http.get(url, headers=bearer("rlk_" + "A" * 43)), 401)


def test_a_key_revoked_elsewhere_stops_working_within_the_ttl(served: str, api_env: ApiEnv) -> None:
    created = create_api_key(store=api_env.store, role=Role.AUDITOR, name="soon revoked")
    url = f"{served}/v1/items/{'0x' + '42' * 32}/eligibility"
    for _ in range(6):  # new connections: both workers verify (and cache) the key
        assert httpx.get(url, headers=bearer(created.plaintext)).status_code == 200
    revoke_api_key(store=api_env.store, key_id=created.key.id)  # this process: the workers do not know
    time.sleep(VERIFIED_TTL_S + 0.5)
    for _ in range(6):
        answer = httpx.get(url, headers=bearer(created.plaintext))
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]


# ---- the supervisor ------------------------------------------------------------------------------------


def _workers(supervisor: int) -> set[int]:
    """The worker processes of the supervisor ``supervisor`` (multiprocessing's spawned children, not its
    resource tracker)."""
    found = set()
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                found.add(int(child))
    return found


def _wait_for_workers(supervisor: int, count: int, *, besides: set[int], timeout: float = 90.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = _workers(supervisor)
        if len(workers) == count and not workers & besides:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"no {count} workers other than {besides} within {timeout:g} s: {_workers(supervisor)}")


class Load:
    """Requests from ``threads`` threads, each on a new connection, until stopped; every outcome recorded."""

    def __init__(self, url: str, headers: dict[str, str], threads: int = 2) -> None:
        self.url = url
        self.headers = headers
        self.outcomes: list[tuple[float, int | str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome: int | str = httpx.get(self.url, headers=self.headers, timeout=60).status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            with self._lock:
                self.outcomes.append((time.monotonic(), outcome))

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, more: int, timeout: float = 60.0) -> None:
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"the load made no progress: {self.outcomes[-5:]}"
            time.sleep(0.05)

    def stop(self) -> list[tuple[float, int | str]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
        return self.outcomes


@pytest.mark.parametrize("workers", [2, 1])
def test_a_killed_worker_is_replaced_and_only_its_requests_in_flight_fail(
    api_env: ApiEnv, keys: dict[str, str], workers: int
) -> None:
    with serve(api_env, API_WORKERS=str(workers)) as served:
        first = _wait_for_workers(served.process.pid, workers, besides=set())
        load = Load(f"{served.url}/v1/items/{'0x' + '42' * 32}/eligibility", bearer(keys["auditor"]))
        try:
            load.wait_for(20)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            replaced = _wait_for_workers(served.process.pid, workers, besides={victim})
            load.wait_for(20)  # served by the replacement (and the other worker)
        finally:
            outcomes = load.stop()
        assert served.alive()
    assert len(replaced - first) == 1
    failed = [outcome for _, outcome in outcomes if outcome != 200]
    assert len(failed) <= 2, failed  # at most one request in flight per load thread when the worker died
    assert all(isinstance(outcome, str) for outcome in failed), failed  # cut connections, never an error answer
    assert sum(1 for at, outcome in outcomes if at > killed_at and outcome == 200) >= 20


# ---- proxies ----------------------------------------------------------------------------------------------


def _verify_statuses(url: str, forwarded: list[str]) -> list[int]:
    code = "0x" + "42" * 32
    return [
        httpx.get(f"{url}/v1/verify/{code}", headers={"X-Forwarded-For": address}, timeout=30).status_code
        for address in forwarded
    ]


def test_forwarded_for_counts_only_from_a_trusted_proxy(api_env: ApiEnv) -> None:
    spoofed = [f"198.51.100.{n}" for n in range(1, 5)]
    limits = {"VERIFY_RATE_LIMIT": "3/minute", "VERIFY_GLOBAL_RATE_LIMIT": "1000/minute"}
    with serve(api_env, **limits) as untrusted:  # no proxy configured: the peer (127.0.0.1) is the client
        assert _verify_statuses(untrusted.url, spoofed) == [200, 200, 200, 429]
    with serve(api_env, **limits, TRUSTED_PROXIES="127.0.0.0/8") as behind_proxy:
        assert _verify_statuses(behind_proxy.url, spoofed) == [200, 200, 200, 200]  # four clients
        assert _verify_statuses(behind_proxy.url, ["203.0.113.7"] * 4) == [200, 200, 200, 429]
    with serve(api_env, **limits, TRUSTED_PROXIES="10.1.2.3") as other_proxy:  # not the peer: not believed
        assert _verify_statuses(other_proxy.url, spoofed) == [200, 200, 200, 429]


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).trusted_proxies == ()  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    assert Settings(_env_file=None).trusted_proxies == ("10.0.0.0/8", "192.0.2.1")  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_TRUSTED_PROXIES", '["::1"]')
    assert Settings(_env_file=None).trusted_proxies == ("::1",)  # type: ignore[call-arg]
    monkeypatch.setenv("LEDGER_TRUSTED_PROXIES", "*")
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(_env_file=None)  # type: ignore[call-arg]


# ---- the request head at the HTTP parser ------------------------------------------------------------------


def test_an_endless_head_is_cut_off_with_a_431(api_env: ApiEnv) -> None:
    with serve(api_env, API_MAX_HEADER_BYTES="8192") as served:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            answer = b""
            with contextlib.suppress(OSError):  # the server closes while the client still sends
                for _ in range(1024):  # up to 64 MiB, never the end of the header
                    conn.sendall(b"p" * 65536)
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"content-type: application/problem+json" in head.lower()
        assert "8192 bytes" in json.loads(body)["detail"]
        assert served.alive()
        assert httpx.get(f"{served.url}/openapi.json", headers={"X-Padding": "p" * 4000}).status_code == 200


def test_the_server_is_configured_from_the_settings() -> None:
    from api.serving import WORKER_HEALTHCHECK_S, CappedHttpToolsProtocol, uvicorn_config

    plain = uvicorn_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert plain.proxy_headers is False and plain.forwarded_allow_ips == ""
    assert plain.timeout_worker_healthcheck == WORKER_HEALTHCHECK_S > 5  # uvicorn's 5 s killed workers still importing
    assert plain.h11_max_incomplete_event_size == Settings(_env_file=None).api_max_header_bytes  # type: ignore[call-arg]
    behind = uvicorn_config(
        Settings(_env_file=None, trusted_proxies=("10.0.0.0/8",), api_workers=3, api_max_header_bytes=4096)  # type: ignore[call-arg]
    )
    assert behind.proxy_headers is True and behind.forwarded_allow_ips == ["10.0.0.0/8"]
    assert behind.workers == 3 and behind.h11_max_incomplete_event_size == 4096
    behind.load()
    assert behind.http_protocol_class is CappedHttpToolsProtocol
