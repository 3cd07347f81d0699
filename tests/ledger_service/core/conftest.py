"""Fixtures for the Merkle and batch document tests: npm's @openzeppelin/merkle-tree as a reference process,
and BatchAnchor plus a MerkleProof probe deployed beside the session's contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3.contract import Contract

from tests.support.chain import ROOT, Deployed, deploy_contract

SCRIPT = Path(__file__).with_name("oz_merkle_tree.js")


class OzMerkleTree:
    """A node process answering with what @openzeppelin/merkle-tree computes (see oz_merkle_tree.js)."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None or not (ROOT / "node_modules" / "@openzeppelin" / "merkle-tree").is_dir():
            pytest.fail("node or npm's @openzeppelin/merkle-tree is missing: run scripts/bootstrap.sh")
        self._process = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference process exited with code {self._process.poll()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


@pytest.fixture(scope="session")
def oz_merkle_tree() -> Iterator[OzMerkleTree]:
    reference = OzMerkleTree()
    yield reference
    reference.close()


@dataclass
class Anchoring:
    """BatchAnchor reading the session ledger's roles, and the test-only MerkleProof probe."""

    anchor: Contract
    probe: Contract
    deployed: Deployed


@pytest.fixture(scope="session")
def anchoring(deployed: Deployed) -> Anchoring:
    admin = deployed.accounts[0]
    anchor = deploy_contract(deployed.w3, "BatchAnchor", deployed.ledger.address, sender=admin)
    probe = deploy_contract(deployed.w3, "MerkleProofProbe", sender=admin)
    return Anchoring(anchor=anchor, probe=probe, deployed=deployed)
