"""The direct-chain reference of bench/api_eligibility.py: the decision GET /v1/items/{id}/eligibility makes,
from the chain alone (no index), by clients that each send the next decision when the previous one is made.

Per decision two or three JSON-RPC batches to the node over a keep-alive connection per client: (latest block,
ledger.itemOf, escrow.saleOf, eth_getLogs of the item's ItemEventRecorded), then (escrow.policyOf of the
sale's version, eth_getLogs of the consumer's ReturnAuthorized), then policyOf of other versions those returns
were bound to; facts as the index defines them (delivery = the first arriving + retail_sold after the item's
latest retail_selling event, which the escrow writes with each sale, recalled = a recall not followed by a
recirculating disposition, history intact = every eventHash recomputes and links and the head and count equal
itemOf's, open return = saleOf.returnOpen, returns in 90 days by ReturnAuthorized's shipBy - shipByDays), then
the same pure :func:`ledger_service.eligibility.decide` with the on-chain policy terms (the chain has no
policy document or category).
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


class JsonRpcConnection:
    """One keep-alive HTTP/1.1 connection to the node for JSON-RPC POSTs (answers with Content-Length or
    chunked bodies). Not aiohttp: on the same node and items in the same run, its client CPU per decision
    lowered the reference by about 30% (the reference must be the node's speed, not the client's)."""

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

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            reader, writer = await self._connect()
        else:
            reader, writer = self.reader, self.writer
        head = b"POST / HTTP/1.1\r\n" + self._host_line
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


def _signature(abi: list[dict[str, Any]], name: str, kind: str) -> str:
    entry = next(e for e in abi if e.get("type") == kind and e.get("name") == name)
    return f"{name}({','.join(_abi_type(i) for i in entry['inputs'])})"


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + str(param["type"])[5:]
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

    async def _batch(self, conn: JsonRpcConnection, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        status, body = await conn.post(json.dumps(payload).encode())
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

    async def decide(self, conn: JsonRpcConnection, item_id: str) -> tuple[str, list[str]]:
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
        self,
        conn: JsonRpcConnection,
        logs: list[dict[str, Any]],
        now: int,
        ship_by_days: dict[tuple[str, int], int],
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


async def _closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    clients, duration, warmup = int(spec["clients"]), float(spec["duration"]), float(spec["warmup"])
    host, port = str(spec["host"]), int(spec["port"])
    ids = list(spec["item_ids"])
    decider = ChainDecider(spec)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    first = JsonRpcConnection(host, port)
    # every item once, one after the other: the decisions for the agreement check (and a warm-up)
    decisions = {item: await decider.decide(first, item) for item in ids}
    first.close()
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration

    async def client(number: int) -> None:
        rng = random.Random(1000 + number)
        conn = JsonRpcConnection(host, port)
        while (t0 := time.perf_counter()) < end:
            label, outcome = "200", ""
            try:
                outcome, _codes = await decider.decide(conn, ids[rng.randrange(len(ids))])
            except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError, KeyError) as exc:
                label = type(exc).__name__
                if len(errors) < 5:
                    errors.append(f"{label}: {exc}")
                conn.close()
            t1 = time.perf_counter()
            if t0 >= measure_from:
                statuses[label] += 1
                if label == "200":
                    outcomes[outcome] += 1
                    latencies.append((t1 - t0) * 1000)
        conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(client(i) for i in range(clients)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - measure_from
    completed = sum(statuses.values())
    return {
        "mode": "chain",
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
        "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
        "decisions": {k: [v[0], v[1]] for k, v in decisions.items()},
    }


def main() -> None:
    """``python bench/_api_eligibility_chain.py SPEC.json``: ``clients`` clients deciding for random items of
    ``item_ids`` for ``warmup`` + ``duration`` seconds (those started after the warm-up count), after every
    item once (``decisions``, for the agreement check); one JSON line. On uvloop, as the API runs."""
    import uvloop

    spec = json.loads(Path(sys.argv[1]).read_text())
    sys.stdout.write(json.dumps(uvloop.run(_closed_loop(spec))) + "\n")


if __name__ == "__main__":
    main()
