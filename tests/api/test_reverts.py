"""A deadline revert names the deadline the return's state checks, even when two deadlines fall on the same
second; a consumer action without a configured relayer is a 503 telling the operator what to set."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api._reverts import explain, utc_text
from ledger_service.chain.artifacts import load_artifact
from ledger_service.chain.reverts import ContractRevertError
from ledger_service.core.codes import ReturnState
from tests.api.conftest import ApiEnv, make_client
from tests.api.flows import Flow, ok, problem
from tests.support.chain import ARTIFACTS

T = 1_798_761_600  # 2027-01-01 00:00 UTC
RETURN_ID = b"\x44" * 32
_RETURN_OF: dict[str, Any] = next(
    e for e in load_artifact("ReturnsEscrow", ARTIFACTS).abi if e["type"] == "function" and e["name"] == "returnOf"
)
_FIELDS = [c["name"] for c in _RETURN_OF["outputs"][0]["components"]]


class _Chain:
    """Just enough of a ChainContext for ``explain``: ``escrow.functions.returnOf(id)`` with ``.call()`` and
    ``.abi`` (the real one), returning a record with ``fields``."""

    def __init__(self, **fields: Any) -> None:
        values = {name: 0 for name in _FIELDS} | {"itemId": b"\x11" * 32} | fields
        self.record = tuple(values[name] for name in _FIELDS)
        self.abi = _RETURN_OF
        self.escrow = self
        self.functions = self

    def returnOf(self, return_id: bytes) -> _Chain:
        assert return_id == RETURN_ID
        return self

    def call(self) -> tuple[Any, ...]:
        return self.record


def _detail(error: str, chain: _Chain) -> str:
    status, sentence = explain(ContractRevertError(error, {"returnId": RETURN_ID, "deadline": T}), chain=chain)  # type: ignore[arg-type]
    assert status == 409
    return sentence


@pytest.mark.parametrize(
    ("state", "fields", "error", "expected"),
    [
        # reclaim of a failed inspection before its dispute window closed; ship-by was the same second
        (
            ReturnState.REJECTED,
            {"shipBy": T, "inspectBy": T - 5, "disputeBy": T},
            "EscrowDeadlineNotReached",
            "dispute",
        ),
        # dispute too late
        (ReturnState.REJECTED, {"shipBy": T, "disputeBy": T}, "EscrowDeadlinePassed", "dispute"),
        # in-transit scan too late: the return is still Authorized
        (ReturnState.AUTHORIZED, {"shipBy": T, "disputeBy": T}, "EscrowDeadlinePassed", "ship-by"),
        # uninspected claim too early (in transit, received)
        (ReturnState.IN_TRANSIT, {"shipBy": T, "inspectBy": T}, "EscrowDeadlineNotReached", "inspect-by"),
        (ReturnState.RECEIVED, {"shipBy": T, "inspectBy": T}, "EscrowDeadlineNotReached", "inspect-by"),
    ],
    ids=["rejected-reclaim", "rejected-dispute", "authorized-scan", "in-transit-claim", "received-claim"],
)
def test_a_deadline_shared_by_two_deadlines_is_named_by_the_return_state(
    state: ReturnState, fields: dict[str, int], error: str, expected: str
) -> None:
    sentence = _detail(error, _Chain(state=int(state), **fields))
    assert f"the {expected} deadline" in sentence and utc_text(T) in sentence, sentence


def test_a_deadline_not_of_the_state_is_still_found_by_its_value() -> None:
    # the state moved on before the explanation was read: the value still tells which one it was
    sentence = _detail("EscrowDeadlinePassed", _Chain(state=int(ReturnState.DISPUTED), shipBy=T - 1, inspectBy=T))
    assert sentence == f"the inspect-by deadline passed on {utc_text(T)}"


def test_an_unknown_deadline_is_just_the_deadline() -> None:
    sentence = _detail("EscrowDeadlinePassed", _Chain(state=int(ReturnState.AUTHORIZED), shipBy=T - 1))
    assert sentence == f"the deadline passed on {utc_text(T)}"


def test_a_consumer_action_without_a_relayer_key_is_a_503_for_the_operator(
    client: TestClient, api_env: ApiEnv, keys: dict[str, str]
) -> None:
    flow = Flow(client, api_env, keys)
    flow.publish()
    sold = flow.sold_and_delivered()
    rma = flow.approved(sold)
    with make_client(api_env) as no_relayer:
        no_relayer.app.state.chain = dataclasses.replace(no_relayer.app.state.chain, relayer=None)  # type: ignore[attr-defined]
        response = no_relayer.post(f"/v1/returns/{rma}/cancel", headers=sold.auth)
        body = problem(response, 503)
        assert "LEDGER_RELAYER_KEY" in body["detail"] and "CONSUMER_AGENT_ROLE" in body["detail"], body
        assert "Traceback" not in response.text
    # with the relayer (the module's client) the same cancel goes through
    assert ok(client.post(f"/v1/returns/{rma}/cancel?wait=true", headers=sold.auth))["tx_hash"]


def test_a_contracts_own_reason_text_is_shown_without_control_or_bidi_characters_and_cut() -> None:
    spoofed = "transfer paused\u202e by the issuer\x1b[31m" + "!" * 500
    status, sentence = explain(ContractRevertError("Error", {"message": spoofed}))
    assert status == 409
    assert sentence.startswith("the contract refused: transfer paused by the issuer[31m!")
    assert "\u202e" not in sentence and "\x1b" not in sentence
    assert len(sentence) < 260 and sentence.endswith("…")
