"""A request that fails validation after its Idempotency-Key was claimed releases the claim: the same
request again is answered at once (not a 409 after waiting for a first request that is long over), and a
corrected request may reuse the key."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.api.conftest import bearer
from tests.api.flows import problem

REQUEST = "/v1/returns/rr_" + "0" * 32 + "/reject"


def test_an_invalid_request_does_not_keep_its_idempotency_key(client: TestClient, keys: dict[str, str]) -> None:
    headers = bearer(keys["merchant"]) | {"Idempotency-Key": "invalid-then-fixed"}
    first = problem(client.post(REQUEST, headers=headers, json={"note": 5}), 422)
    assert first["errors"][0]["loc"] == ["body", "note"]
    started = time.monotonic()
    again = problem(client.post(REQUEST, headers=headers, json={"note": 5}), 422)
    assert again["errors"] == first["errors"]
    assert time.monotonic() - started < 5
    # the corrected request runs (and finds no such request), instead of "this key was used for a different request"
    problem(client.post(REQUEST, headers=headers, json={"note": "wrong reason"}), 404)
