"""The Python code table must match contracts/EpcisCodes.sol, the escrow's ReturnState enum and Roles.sol."""

from __future__ import annotations

import re
from pathlib import Path

from ledger_service.core.codes import ROLE_IDS, BizStep, Disposition, ReturnState
from ledger_service.core.keccak import keccak_text

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


def test_role_ids_name_every_role_of_roles_sol() -> None:
    """ROLE_IDS holds exactly the roles contracts/Roles.sol defines, each keccak256 of the name it hashes."""
    source = (ROOT / "contracts" / "Roles.sol").read_text()
    hashed = dict(re.findall(r"bytes32 internal constant (\w+) = keccak256\(\"(\w+)\"\);", source))
    assert hashed, "no role constants found in Roles.sol"
    assert set(ROLE_IDS) - {"DEFAULT_ADMIN_ROLE"} == set(hashed.values())
    for name in hashed.values():
        assert ROLE_IDS[name] == keccak_text(name)
    assert "EXCHANGE_ROLE" in ROLE_IDS
