"""``ledger-verify scan --proof FILE``: one batched scan checked from its proof alone and the chain.

The file is the answer of ``GET /v1/scans/batches/{id}/proofs/{position}`` (or any JSON with its ``values``,
``leaf``, ``proof`` and ``root``). Nothing in it is trusted: the leaf is recomputed from the values (OpenZeppelin's
StandardMerkleTree leaf of ``LEAF_ENCODING``), the proof is walked from that leaf to a root, and the node is
asked whether the scan's own submitter (the leaf's last value) anchored exactly that root on the given
``BatchAnchor`` (``isAnchored``). The scan as the file describes it (``scan``) must say what the values say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger_service.core.batch_document import LEAF_ENCODING
from ledger_service.core.codes import BizStep, Disposition, encode_location
from ledger_service.core.hashchain import item_id
from ledger_service.core.keccak import keccak
from ledger_service.core.merkle import abi_encode_static, leaf_hash, process_proof
from ledger_service.independent_verifier._rpc import Rpc

_IS_ANCHORED = keccak(b"isAnchored(address,bytes32)")[:4]
_STEPS = {step.cbv: int(step) for step in BizStep}
_DISPOSITIONS = {disposition.cbv: int(disposition) for disposition in Disposition}


@dataclass
class ScanReport:
    submitter: str
    root: str
    item_id: str
    seq: int
    anchored: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.anchored and not self.problems


def _bytes(value: object, size: int, where: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 2 + 2 * size:
        raise ValueError(f"{where} must be 0x and {2 * size} hex digits, got {value!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{where} must be 0x and {2 * size} hex digits, got {value!r}") from None


def _typed(values: object) -> list[bytes | int]:
    if not isinstance(values, list) or len(values) != len(LEAF_ENCODING):
        raise ValueError(f"values must be a list of the {len(LEAF_ENCODING)} leaf values ({', '.join(LEAF_ENCODING)})")
    typed: list[bytes | int] = []
    for index, (kind, value) in enumerate(zip(LEAF_ENCODING, values, strict=True)):
        where = f"values[{index}] ({kind})"
        if kind == "bytes32":
            typed.append(_bytes(value, 32, where))
        elif kind == "address":
            typed.append(_bytes(value, 20, where))
        elif isinstance(value, str) and value.isdigit():
            typed.append(int(value))
        else:
            raise ValueError(f"{where} must be a decimal string, got {value!r}")
    return typed


def read_proof(path: Path) -> dict[str, Any]:
    """The proof file's JSON object; ValueError with the reason if it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the proof file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the proof file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the proof file {path} must hold a JSON object")
    return data


def verify_scan(rpc: Rpc, *, batch_anchor: str, proof: dict[str, Any]) -> ScanReport:
    """Checks ``proof`` (see the module docstring); ValueError when the file is malformed, NodeError when the node
    cannot answer."""
    values = _typed(proof.get("values"))
    nodes = proof.get("proof")
    if not isinstance(nodes, list):
        raise ValueError("proof must be a list of 0x + 64 hex digit hashes")
    path = [_bytes(node, 32, f"proof[{i}]") for i, node in enumerate(nodes)]
    leaf = leaf_hash(abi_encode_static(LEAF_ENCODING, values))
    root = process_proof(leaf, path)
    item, seq, submitter = values[0], values[1], values[9]
    if not isinstance(item, bytes) or not isinstance(submitter, bytes) or not isinstance(seq, int):
        raise ValueError("values do not have the leaf's types")  # _typed makes this impossible
    report = ScanReport(submitter="0x" + submitter.hex(), root="0x" + root.hex(), item_id="0x" + item.hex(), seq=seq)
    if "leaf" in proof and _bytes(proof["leaf"], 32, "leaf") != leaf:
        report.problems.append("the file's leaf is not the hash of its values")
    if "root" in proof and _bytes(proof["root"], 32, "root") != root:
        report.problems.append(f"the proof leads to {report.root}, not to the file's root {proof['root']}")
    report.problems.extend(_scan_disagrees(proof.get("scan"), values))
    data = _IS_ANCHORED + bytes(12) + submitter + root
    answer = rpc.call("eth_call", [{"to": batch_anchor, "data": "0x" + data.hex()}, "latest"])
    report.anchored = isinstance(answer, str) and answer.startswith("0x") and int(answer[2:] or "0", 16) == 1
    if not report.anchored:
        report.problems.append(
            f"{report.submitter} has not anchored root {report.root} on BatchAnchor {batch_anchor}: the scan is not "
            "on the chain"
        )
    return report


def _scan_disagrees(scan: object, values: list[bytes | int]) -> list[str]:
    """Where the file's readable ``scan`` says something else than the values the proof covers."""
    if scan is None:
        return []
    if not isinstance(scan, dict):
        return ["scan must be an object"]
    try:
        said = {
            "item": item_id(str(scan["item"])),
            "seq": scan["seq"],
            "biz_step": _STEPS[str(scan["biz_step"])],
            "disposition": _DISPOSITIONS[str(scan["disposition"])],
            "read_point": encode_location(str(scan["read_point"])),
            "time": scan["time"],
        }
    except (KeyError, ValueError) as exc:
        return [f"scan is not a readable scan: {exc}"]
    proven = dict(zip(("item", "seq", "_", "biz_step", "disposition", "read_point"), values[:6], strict=True))
    proven["time"] = values[8]
    return [f"scan.{name} is not what the proven leaf holds" for name, value in said.items() if proven[name] != value]
