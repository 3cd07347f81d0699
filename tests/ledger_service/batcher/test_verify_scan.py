"""``ledger-verify scan --proof FILE`` on a real anvil: a batched scan's proof, as the API serves it, verified from
the file and the chain alone; a proof whose values were changed, or that the chain never anchored, is not."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ledger_service.batcher import TurnStats
from ledger_service.capture.scans import scan_proof
from ledger_service.core.batch_document import LEAF_ENCODING
from ledger_service.independent_verifier.cli import main
from ledger_service.store import Store
from ledger_service.store.scan_queue import batches_in
from ledger_service.store.tables import BATCH_ANCHORED, BATCH_SEALED
from tests.ledger_service.batcher.conftest import make_batcher, queue
from tests.ledger_service.indexer.conftest import Chain
from tests.ledger_service.indexer.test_batches import _register


def _proof_file(tmp_path: Path, name: str, proof: dict[str, object]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(proof))
    return str(path)


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
def test_a_proof_verifies_from_the_file_and_the_chain_alone(
    chain: Chain, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [_register(chain) for _ in range(3)]
    with Store.open(store_url) as store:
        queue(chain, store, items)
        batcher = make_batcher(chain, store, store_url, tmp_path / "documents", batch_seal_s=0.001)
        batcher.seal_due(stats := TurnStats())
        (sealed,) = batches_in(store, BATCH_SEALED)
        assert sealed.document is not None
        made = dataclasses.asdict(scan_proof(sealed.document, 1)) | {"encoding": list(LEAF_ENCODING)}
        common = ["--rpc-url", chain.node.url, "--batch-anchor", chain.deployed.anchor.address]
        good = _proof_file(tmp_path, "good.json", made)

        # sealed but not anchored yet: not on the chain
        capsys.readouterr()
        assert main(["scan", "--proof", good, *common]) == 1
        assert "has not anchored root" in capsys.readouterr().out

        batcher.anchor_sealed(stats)
        assert [b.id for b in batches_in(store, BATCH_ANCHORED)] == [sealed.id]
        capsys.readouterr()  # the batcher's log lines
        assert main(["scan", "--proof", good, *common, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["verified"] and report["seq"] == 0 and report["problems"] == []

        # another time in the values: another leaf, a root nobody anchored
        values = list(made["values"])
        values[8] = str(int(values[8]) - 1)
        assert main(["scan", "--proof", _proof_file(tmp_path, "forged.json", made | {"values": values}), *common]) == 1
        out = capsys.readouterr().out
        assert "not the hash of its values" in out and "NOT VERIFIED" in out
        # the readable scan must say what the proven values say
        lying = made | {"scan": made["scan"] | {"read_point": "0614141.00999.0"}}
        assert main(["scan", "--proof", _proof_file(tmp_path, "lying.json", lying), *common]) == 1
        assert "scan.read_point is not what the proven leaf holds" in capsys.readouterr().out

        (tmp_path / "broken.json").write_text("{not json")
        assert main(["scan", "--proof", str(tmp_path / "broken.json"), *common]) == 2
        assert "is not JSON" in capsys.readouterr().err
