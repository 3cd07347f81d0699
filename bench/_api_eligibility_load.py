"""The loads of bench/api_eligibility.py that no maintained tool makes, run as their own process:
``python bench/_api_eligibility_load.py SPEC.json``. (The API's saturation runs on wrk: bench/api_eligibility.lua.)

One event loop (uvloop when installed), a minimal HTTP/1.1 client on raw
asyncio streams (request line, headers, Content-Length body; no per-request
object churn, so the client's own CPU stays small next to the server's).

Why not a maintained generator for these three:

- open loop at a fixed rate, latency from each *scheduled* send (no
  coordinated omission): wrk2 does exactly this but is not packaged by Debian
  (bookworm has wrk, hey, bombardier, jmeter, tsung, locust, molotov); wrk's
  ``delay()`` and hey's ``-q`` pace each connection from its previous answer
  and time from the actual send, so a stall hides the requests it delayed;
  locust and molotov run each user the same way, and a Python tool cannot
  offer the 2,000 req/s target on these two cores beside the API anyway;
- the latency of one client alone (see the closed loop below);
- the direct-chain decision: per decision two or three JSON-RPC batches whose
  contents depend on the previous answers, then the pure rules: a program, not
  a request template.

Open loop (``"loop": "open"``, api mode): GET /v1/items/{id}/eligibility with
the given Authorization, the id drawn uniformly from the synthetic index's
items (regenerated from their index, see _api_eligibility_fill.item_id_of), a
share of them unknown ids, *scheduled* at a constant ``rate`` per second (the
k-th at start + k / rate, whatever the answers so far), each taking a free
keep-alive connection from a pool (``clients`` opened beforehand, more opened
when none is free, up to ``max_connections``; beyond that it waits for one).
The scheduler wakes on a Linux timerfd armed at each scheduled time (ns
resolution; asyncio timers have 1 ms); elsewhere on ``asyncio.sleep`` (at
least 1 ms, so not spinning). Latency is measured from the *scheduled* send
time, so a slow answer, a busy generator or a wait for a connection counts
against it; also from the actual send, and how late sends were. Requests
scheduled in the ``duration`` after the ``warmup`` count; those still
unanswered ``drain`` seconds after the schedule ends count as errors. The
bodies are not parsed (cheap; the closed loop reports the outcomes).

Closed loop: ``clients`` concurrent clients (asyncio tasks, one keep-alive
connection each, the next request sent when the previous answer is read) for
``warmup`` + ``duration`` seconds; latencies of the requests *started* after
the warm-up count. Modes:

- ``api``: the items drawn as in the open loop, the answers parsed (outcome,
  reason codes). bench/api_eligibility.py uses it for the latency of one client
  alone: with one connection wrk's latency tail was an order of magnitude
  heavier than this client's on the same server, and a client cannot report
  less than the server's round trip, so this is the faithful figure (at
  saturation, where throughput is the figure, wrk is used: it spends about
  half this client's CPU per request, CPU the API shares);
- ``chain``: the decision GET .../eligibility makes, from the chain alone
  (no index): per decision two or three JSON-RPC batches to the node:
  (latest block, ledger.itemOf, escrow.saleOf, eth_getLogs of the item's
  ItemEventRecorded), then (escrow.policyOf of the sale's version,
  eth_getLogs of the consumer's ReturnAuthorized), then policyOf of other
  versions those returns were bound to; facts as the index defines them
  (delivery = the first arriving + retail_sold after the item's latest
  retail_selling event, which the escrow writes with each sale, recalled = a
  recall not followed by a recirculating disposition, history intact = every
  eventHash recomputes and links and the head and count equal itemOf's, open
  return = saleOf.returnOpen, returns in 90 days by ReturnAuthorized's
  shipBy - shipByDays), then the same pure
  :func:`ledger_service.eligibility.decide` with the on-chain policy terms
  (the chain has no policy document or category).

Prints one JSON object: requests, errors, requests/s, latency percentiles,
statuses, in the closed loop the decision outcomes and reason codes seen, in
chain mode the decision of every item (outcome, reason codes) for the agreement check;
in the open loop the offered and achieved rates, latencies from the scheduled
and from the actual send, late sends and the connections used.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import math
import os
import random
import resource
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _api_eligibility_fill import item_id_of  # noqa: E402
from common import percentile  # noqa: E402

from ledger_service.chain.artifacts import load_artifact  # noqa: E402
from ledger_service.core.codes import BizStep, Disposition  # noqa: E402
from ledger_service.core.hashchain import event_hash_hex  # noqa: E402
from ledger_service.core.keccak import keccak  # noqa: E402
from ledger_service.eligibility import ItemFacts, PolicyTerms, ReturnRequestFacts, SaleFacts, decide  # noqa: E402

DAY = 86_400
ANY_REASON = "unspecified"
RECIRCULATING = {
    int(Disposition.SELLABLE_ACCESSIBLE),
    int(Disposition.SELLABLE_NOT_ACCESSIBLE),
    int(Disposition.CONFORMANT),
}
ZERO32 = "0x" + "00" * 32


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (responses with Content-Length or chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._host_line = f"Host: {host}:{port}\r\n".encode()

    async def connect(self) -> None:
        """Opens the connection now (else the first request does)."""
        if self.reader is None:
            await self._connect()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader, self.writer = reader, writer
        return reader, writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, *, headers: bytes = b"", body: bytes = b"") -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            reader, writer = await self._connect()
        else:
            reader, writer = self.reader, self.writer
        head = b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()) + self._host_line + headers
        if body:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write(head + b"\r\n" + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length, chunked, close = 0, False, False
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            payload = b"".join(p[:-2] for p in parts)
        else:
            payload = await reader.readexactly(length)
        if close:
            self.close()
        return status, payload


# ---- the direct-chain decision ----------------------------------------------------------------


def _signature(abi: list[dict[str, Any]], name: str, kind: str) -> str:
    entry = next(e for e in abi if e.get("type") == kind and e.get("name") == name)
    return f"{name}({','.join(_abi_type(i) for i in entry['inputs'])})"


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return str(param["type"])


def _selector(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()[:8]


def _topic(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


def _words(hex_data: str) -> list[str]:
    data = hex_data[2:]
    return [data[i : i + 64] for i in range(0, len(data), 64)]


class ChainDecider:
    """Eligibility from the chain's state and logs alone, over one keep-alive JSON-RPC connection."""

    def __init__(self, spec: dict[str, Any]) -> None:
        artifacts = Path(spec["artifacts_dir"])
        ledger_abi = load_artifact("ProvenanceLedger", artifacts).abi
        escrow_abi = load_artifact("ReturnsEscrow", artifacts).abi
        self.ledger = spec["ledger"].lower()
        self.escrow = spec["escrow"].lower()
        self.chain_id = int(spec["chain_id"])
        self.from_block = hex(int(spec["deploy_block"]))
        self.item_of = _selector(_signature(ledger_abi, "itemOf", "function"))
        self.sale_of = _selector(_signature(escrow_abi, "saleOf", "function"))
        self.policy_of = _selector(_signature(escrow_abi, "policyOf", "function"))
        self.item_event = _topic(_signature(ledger_abi, "ItemEventRecorded", "event"))
        self.authorized = _topic(_signature(escrow_abi, "ReturnAuthorized", "event"))
        self._id = 0

    async def _batch(self, conn: HttpConnection, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        status, body = await conn.request("POST", "/", body=json.dumps(payload).encode())
        if status != 200:
            raise RuntimeError(f"node answered HTTP {status}")
        answers = sorted(json.loads(body), key=lambda a: a["id"])
        out = []
        for answer in answers:
            if "error" in answer:
                raise RuntimeError(f"node error: {answer['error']}")
            out.append(answer["result"])
        return out

    def _call(self, to: str, data: str) -> tuple[str, list[Any]]:
        return ("eth_call", [{"to": to, "data": data}, "latest"])

    def _policy_call(self, merchant: str, version: int) -> tuple[str, list[Any]]:
        return self._call(self.escrow, self.policy_of + merchant[2:].rjust(64, "0") + f"{version:064x}")

    async def decide(self, conn: HttpConnection, item_id: str) -> tuple[str, list[str]]:
        """(outcome, reason codes) for the item's current consumer, as GET .../eligibility would answer."""
        item_word = item_id[2:]
        block, item_raw, sale_raw, logs = await self._batch(
            conn,
            [
                ("eth_getBlockByNumber", ["latest", False]),
                self._call(self.ledger, self.item_of + item_word),
                self._call(self.escrow, self.sale_of + item_word),
                (
                    "eth_getLogs",
                    [
                        {
                            "address": self.ledger,
                            "topics": [self.item_event, item_id],
                            "fromBlock": self.from_block,
                            "toBlock": "latest",
                        }
                    ],
                ),
            ],
        )
        now = max(int(time.time()), int(block["timestamp"], 16))
        head, count, _merchant, destroyed = _words(item_raw)[:4]
        registered = int(count, 16) > 0
        if not registered:
            decision = decide(
                item=ItemFacts(item_id=item_id, registered=False),
                sale=None,
                policy=None,
                request=ReturnRequestFacts(requester="0x" + "00" * 20, reason_code=ANY_REASON, now=now),
            )
            return decision.outcome.value, [r.code for r in decision.reasons]
        intact, recalled, delivered_at = self._history(item_id, logs, head, int(count, 16))
        s = _words(sale_raw)
        consumer = "0x" + s[0][24:]
        sold_at, version, return_count = int(s[1], 16), int(s[2], 16), int(s[3], 16)
        return_open, closed = int(s[4], 16) != 0, int(s[5], 16) != 0
        price, merchant, sale_seq = int(s[7], 16), "0x" + s[8][24:], int(s[9], 16)
        has_sale = sale_seq != 0 and not closed
        requester = consumer if sale_seq != 0 else "0x" + "00" * 20
        terms: PolicyTerms | None = None
        recent = 0
        if has_sale:
            policy_raw, returns_logs = await self._batch(
                conn,
                [
                    self._policy_call(merchant, version),
                    (
                        "eth_getLogs",
                        [
                            {
                                "address": self.escrow,
                                "topics": [self.authorized, None, None, "0x" + consumer[2:].rjust(64, "0")],
                                "fromBlock": self.from_block,
                                "toBlock": "latest",
                            }
                        ],
                    ),
                ],
            )
            terms = _terms(version, policy_raw)
            recent = await self._recent_returns(conn, returns_logs, now, {(merchant, version): terms.ship_by_days})
        open_id = None
        if has_sale and return_open:
            open_id = (
                "0x"
                + keccak(
                    bytes.fromhex(
                        f"{self.chain_id:064x}"
                        + self.escrow[2:].rjust(64, "0")
                        + item_word
                        + f"{sale_seq:064x}"
                        + f"{return_count - 1:064x}"
                    )
                ).hex()
            )
        decision = decide(
            item=ItemFacts(
                item_id=item_id,
                registered=True,
                destroyed=int(destroyed, 16) != 0,
                recalled=recalled,
                history_intact=intact,
                delivered_at=delivered_at
                if has_sale and delivered_at is not None and delivered_at >= sold_at
                else None,
            ),
            sale=SaleFacts(consumer=consumer, merchant=merchant, price=price, sold_at=sold_at, policy_version=version)
            if has_sale
            else None,
            policy=terms,
            request=ReturnRequestFacts(
                requester=requester,
                reason_code=ANY_REASON,
                now=now,
                open_return_id=open_id,
                consumer_returns_90d=recent,
            ),
        )
        return decision.outcome.value, [r.code for r in decision.reasons]

    def _history(
        self, item_id: str, logs: list[dict[str, Any]], head: str, count: int
    ) -> tuple[bool, bool, int | None]:
        """(hash chain intact and equal to itemOf, recalled, last delivery time) from the item's events."""
        events = sorted(logs, key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)))
        intact = len(events) == count
        prev = ZERO32
        last_recall = last_back = -1
        delivered_at: int | None = None
        for expected_seq, log in enumerate(events):
            w = _words(log["data"])
            seq, step, disposition = int(w[0], 16), int(w[1], 16), int(w[2], 16)
            timestamp, prev_hash, event_hash = int(w[6], 16), "0x" + w[7], "0x" + w[8]
            actor = "0x" + log["topics"][2][26:]
            recomputed = event_hash_hex(
                prev_hash=prev_hash,
                item_id=item_id,
                seq=seq,
                biz_step=step,
                disposition=disposition,
                actor=actor,
                location="0x" + w[3],
                document="0x" + w[4],
                biz_transaction="0x" + w[5],
                timestamp=timestamp,
            )
            if seq != expected_seq or prev_hash != prev or recomputed != event_hash:
                intact = False
            prev = event_hash
            if disposition == int(Disposition.RECALLED):
                last_recall = seq
            elif disposition in RECIRCULATING:
                last_back = seq
            if step == int(BizStep.RETAIL_SELLING):  # a new sale: no delivery yet
                delivered_at = None
            elif step == int(BizStep.ARRIVING) and disposition == int(Disposition.RETAIL_SOLD) and delivered_at is None:
                delivered_at = timestamp
        if prev != "0x" + head:
            intact = False
        return intact, last_recall >= 0 and last_back < last_recall, delivered_at

    async def _recent_returns(
        self, conn: HttpConnection, logs: list[dict[str, Any]], now: int, ship_by_days: dict[tuple[str, int], int]
    ) -> int:
        """Returns authorized in the 90 days up to ``now`` (authorized at = shipBy - the policy's shipByDays)."""
        parsed = []
        for log in logs:
            w = _words(log["data"])
            parsed.append(("0x" + w[0][24:], int(w[5], 16), int(w[7], 16)))
        missing = sorted({(m, v) for m, v, _ in parsed} - set(ship_by_days))
        if missing:
            answers = await self._batch(conn, [self._policy_call(m, v) for m, v in missing])
            for key, raw in zip(missing, answers, strict=True):
                ship_by_days[key] = int(_words(raw)[5], 16)
        count = 0
        for merchant, version, ship_by in parsed:
            authorized_at = ship_by - ship_by_days[(merchant, version)] * DAY
            if now - 90 * DAY < authorized_at <= now:
                count += 1
        return count


def _terms(version: int, raw: str) -> PolicyTerms:
    w = [int(x, 16) for x in _words(raw)[:8]]
    return PolicyTerms(
        version=version,
        window_days=w[0],
        restocking_fee_bps=w[1],
        fast_refund=w[2] != 0,
        fast_refund_max_value=w[3],
        fast_refund_max_returns_90d=w[4],
        ship_by_days=w[5],
        inspect_by_days=w[6],
        dispute_window_days=w[7],
    )


# ---- the load loop ------------------------------------------------------------------------------


class StatusError(Exception):
    """The API answered with another status than 200."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300].decode(errors='replace')}")
        self.status = status


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The closed loop (see the module docstring): the API with one client, or the direct-chain decisions."""
    clients, duration, warmup = int(spec["clients"]), float(spec["duration"]), float(spec["warmup"])
    host, port = spec["host"], int(spec["port"])
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    errors: list[str] = []
    decisions: dict[str, Any] = {}

    if spec["mode"] == "api":
        n, unknown_share = int(spec["synthetic_items"]), float(spec.get("unknown_share", 0.0))
        headers = f"Authorization: {spec['authorization']}\r\nAccept: application/json\r\n".encode()

        async def decide_one(conn: HttpConnection, rng: random.Random) -> tuple[str, list[str]]:
            item = item_id_of(rng.randrange(n))
            if unknown_share and rng.random() < unknown_share:
                item = "0x" + rng.randbytes(32).hex()
            status, body = await conn.request("GET", f"/v1/items/{item}/eligibility", headers=headers)
            if status != 200:
                raise StatusError(status, body)
            answer = json.loads(body)
            return answer["outcome"], [r["code"] for r in answer["reasons"]]

    else:
        ids = list(spec["item_ids"])
        decider = ChainDecider(spec)
        first = HttpConnection(host, port)
        for item in ids:  # every item once: the decisions for the agreement check (and a warm-up)
            decisions[item] = await decider.decide(first, item)
        first.close()

        async def decide_one(conn: HttpConnection, rng: random.Random) -> tuple[str, list[str]]:
            return await decider.decide(conn, ids[rng.randrange(len(ids))])

    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration

    async def client(number: int) -> None:
        rng = random.Random(1000 + number)
        conn = HttpConnection(host, port)
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            ok, label = True, "200"
            try:
                outcome, reason_codes = await decide_one(conn, rng)
                if t0 >= measure_from:
                    outcomes[outcome] += 1
                    codes.update(reason_codes)
            except StatusError as exc:
                ok, label = False, str(exc.status)
                if len(errors) < 5:
                    errors.append(str(exc))
            except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError, KeyError) as exc:
                ok, label = False, type(exc).__name__
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
            t1 = time.perf_counter()
            if t0 >= measure_from:
                statuses[label] += 1
                if ok:
                    latencies.append((t1 - t0) * 1000)
        conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(client(i) for i in range(clients)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - measure_from
    completed = sum(statuses.values())
    return {
        "mode": spec["mode"],
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests": completed,
        "errors": completed - len(latencies),
        "error_samples": errors,
        "rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p90_ms": round(percentile(latencies, 0.90), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "max_ms": round(max(latencies), 3) if latencies else None,
        "statuses": dict(statuses),
        "outcomes": dict(outcomes),
        "reason_codes": dict(codes.most_common()),
        "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
        "decisions": {k: [v[0], v[1]] for k, v in decisions.items()},
    }


# ---- the open loop ------------------------------------------------------------------------------

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Alarm:
    """Calls ``callback`` on the event loop once ``time.perf_counter()`` reaches the time last given to
    :meth:`at`: a Linux timerfd on CLOCK_MONOTONIC (perf_counter's clock) armed at that absolute time and
    watched by the loop, so wake-ups within microseconds for one read and one syscall each (the loop's own
    timers round to milliseconds). :meth:`create` gives None where there is no timerfd."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, settime: Any, callback: Callable[[], None]) -> None:
        self._loop, self._fd, self._settime, self._callback = loop, fd, settime, callback
        loop.add_reader(fd, self._ready)

    @classmethod
    def create(cls, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Alarm | None:
        if not sys.platform.startswith("linux"):
            return None
        if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            create, settime = libc.timerfd_create, libc.timerfd_settime
        except (OSError, AttributeError):
            return None
        settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        fd = create(CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        return cls(loop, fd, settime, callback)

    def at(self, when: float) -> None:
        ns = math.ceil(when * 1e9)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
        if self._settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _ready(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; reading it re-arms the readiness
        except BlockingIOError:
            return
        self._callback()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


async def run_open(spec: dict[str, Any]) -> dict[str, Any]:
    """The open loop (see the module docstring): GET .../eligibility scheduled at ``rate`` per second."""
    if spec["mode"] != "api":
        raise ValueError("the open loop is for the api mode")
    rate, duration, warmup = float(spec["rate"]), float(spec["duration"]), float(spec["warmup"])
    pool, cap = int(spec["clients"]), max(int(spec["clients"]), int(spec.get("max_connections", 128)))
    drain = float(spec.get("drain", 30.0))
    host, port = spec["host"], int(spec["port"])
    n = int(spec["synthetic_items"])
    ids = [item_id_of(i) for i in range(n)]
    unknown_share = float(spec.get("unknown_share", 0.0))
    headers = f"Authorization: {spec['authorization']}\r\nAccept: application/json\r\n".encode()
    loop = asyncio.get_running_loop()
    rng = random.Random(2000)

    first_measured = math.ceil(warmup * rate)  # request k is scheduled at t0 + k / rate
    total = first_measured + math.ceil(duration * rate)
    pending: deque[tuple[float, bool, str]] = deque()  # (scheduled time, measured, item id), not yet sent
    idle: deque[asyncio.Future[None]] = deque()  # workers (= connections) waiting for a request
    workers: list[asyncio.Task[None]] = []
    from_scheduled: list[float] = []
    from_sent: list[float] = []
    late: list[float] = []
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    state = {"next": 0, "closing": False, "queued": 0, "answered_in_window": 0}

    async def worker(conn: HttpConnection) -> None:
        while True:
            if pending:
                scheduled, measured, item = pending.popleft()
            elif state["closing"]:
                break
            else:
                wake = loop.create_future()
                idle.append(wake)
                await wake
                continue
            sent = time.perf_counter()
            ok, label = True, "200"
            try:
                status, body = await conn.request("GET", f"/v1/items/{item}/eligibility", headers=headers)
                label, ok = str(status), status == 200
                if not ok and len(errors) < 5:
                    errors.append(f"HTTP {status}: {body[:300].decode(errors='replace')}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                ok, label = False, type(exc).__name__
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
            done = time.perf_counter()
            if measured:
                statuses[label] += 1
                late.append(sent - scheduled)
                if ok:
                    from_scheduled.append(done - scheduled)
                    from_sent.append(done - sent)
                    if done <= end:
                        state["answered_in_window"] += 1
        conn.close()

    def dispatch(k: int, scheduled: float) -> None:
        item = ids[rng.randrange(n)]
        if unknown_share and rng.random() < unknown_share:
            item = "0x" + rng.randbytes(32).hex()
        measured = k >= first_measured
        pending.append((scheduled, measured, item))
        while idle:
            wake = idle.popleft()
            if not wake.done():
                wake.set_result(None)
                return
        if len(workers) < cap:
            workers.append(loop.create_task(worker(HttpConnection(host, port))))
        elif measured:
            state["queued"] += 1

    def due() -> float | None:
        """Dispatches every request whose time has come; the time of the next one (None: schedule over)."""
        now = time.perf_counter()
        k = state["next"]
        while k < total:
            scheduled = t0 + k / rate
            if scheduled > now:
                state["next"] = k
                return scheduled
            dispatch(k, scheduled)
            k += 1
        state["next"] = k
        return None

    conns = [HttpConnection(host, port) for _ in range(pool)]
    await asyncio.gather(*(c.connect() for c in conns))
    workers.extend(loop.create_task(worker(c)) for c in conns)
    await asyncio.sleep(0.05)  # the workers wait on the idle list
    finished: asyncio.Future[None] = loop.create_future()

    def tick() -> None:
        following = due()
        if following is None:
            if not finished.done():
                finished.set_result(None)
        elif alarm is not None:
            alarm.at(following)

    alarm = Alarm.create(loop, tick)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter() + 0.01
    measure_from = t0 + first_measured / rate
    end = t0 + total / rate
    if alarm is not None:
        alarm.at(t0)
        await finished
        alarm.close()
    else:
        while (following := due()) is not None:
            await asyncio.sleep(max(0.001, following - time.perf_counter()))
    state["closing"] = True
    while idle:
        wake = idle.popleft()
        if not wake.done():
            wake.set_result(None)
    _done, stuck = await asyncio.wait(workers, timeout=drain)
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)

    scheduled_count = total - first_measured
    answered = sum(statuses.values())
    unfinished = scheduled_count - answered
    if unfinished and len(errors) < 5:
        errors.append(f"{unfinished} requests unanswered {drain:g} s after the schedule ended")
    window = end - measure_from
    ms = sorted(x * 1000 for x in from_scheduled)
    sent_ms = sorted(x * 1000 for x in from_sent)
    late_ms = sorted(x * 1000 for x in late)
    return {
        "mode": "api",
        "loop": "open",
        "event_loop": type(loop).__module__.split(".")[0],
        "timer": "timerfd" if alarm is not None else "asyncio.sleep",
        "offered_rps": rate,
        "seconds": round(window, 3),
        "scheduled": scheduled_count,
        "requests": answered,
        "errors": scheduled_count - len(ms),
        "unfinished": unfinished,
        "error_samples": errors,
        "achieved_rps": round(state["answered_in_window"] / window, 1) if window > 0 else 0.0,
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "p999_ms": round(percentile(ms, 0.999), 3),
        "max_ms": round(ms[-1], 3) if ms else None,
        "from_send_p50_ms": round(percentile(sent_ms, 0.50), 3),
        "from_send_p99_ms": round(percentile(sent_ms, 0.99), 3),
        "late_p50_ms": round(percentile(late_ms, 0.50), 3),
        "late_p99_ms": round(percentile(late_ms, 0.99), 3),
        "late_max_ms": round(late_ms[-1], 3) if late_ms else None,
        "late_over_1ms": sum(1 for x in late_ms if x > 1.0),
        "queued_for_connection": state["queued"],
        "connections": len(workers),
        "initial_connections": pool,
        "max_connections": cap,
        "statuses": dict(statuses),
        "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    coroutine = run_open(spec) if spec.get("loop") == "open" else run(spec)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
