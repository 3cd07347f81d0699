"""The Python code table must match contracts/EpcisCodes.sol and the escrow's ReturnState enum."""

from __future__ import annotations

import re
from pathlib import Path

from ledger_service.core.codes import BizStep, Disposition, ReturnState

ROOT = Path(__file__).resolve().parents[3]
BIZ_STEPS = {m.name for m in BizStep}


def solidity_constants() -> dict[str, int]:
    source = (ROOT / "contracts" / "EpcisCodes.sol").read_text()
    return {name: int(value) for name, value in re.findall(r"uint8 internal constant (\w+) = (\d+);", source)}


def test_biz_steps_match_solidity() -> None:
    constants = solidity_constants()
    solidity = {name: value for name, value in constants.items() if name in BIZ_STEPS}
    assert solidity == {m.name: m.value for m in BizStep}
    assert constants["MAX_BIZ_STEP"] == max(BizStep)


def test_dispositions_match_solidity() -> None:
    constants = solidity_constants()
    expected = {m.name: m.value for m in Disposition}
    # IN_TRANSIT exists in both tables with the same name; compare the disposition block only.
    solidity = {name: constants[name] for name in expected}
    assert solidity == expected
    assert constants["MAX_DISPOSITION"] == max(Disposition)
    assert len(set(expected.values())) == len(expected)


def test_return_states_match_solidity_enum() -> None:
    source = (ROOT / "contracts" / "interfaces" / "IReturnsEscrow.sol").read_text()
    body = re.search(r"enum ReturnState \{([^}]*)\}", source)
    assert body is not None
    names = [n.strip() for n in body.group(1).split(",") if n.strip()]
    as_python = [re.sub(r"(?<!^)(?=[A-Z])", "_", n).upper() for n in names]
    assert as_python == [m.name for m in ReturnState]
