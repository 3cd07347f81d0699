"""The request gate (:mod:`api.limits`) in a served ``ledger-api``: a hostile body cannot take a worker
down, whoever sends it, and the service keeps answering afterwards."""

from __future__ import annotations

import httpx

from tests.api.conftest import ApiEnv, bearer
from tests.api.served import serve

DEEP = b"[" * 100_000


def test_deeply_nested_json_does_not_crash_the_server(api_env: ApiEnv, keys: dict[str, str]) -> None:
    with serve(api_env) as served, httpx.Client(base_url=served.url, timeout=30) as http:
        json_headers = {"Content-Type": "application/json"}
        anonymous = http.post("/v1/returns", content=DEEP, headers=json_headers)
        assert anonymous.status_code == 401, anonymous.text
        signed_in = http.post(
            "/v1/merchants/me/policy", content=DEEP, headers={**json_headers, **bearer(keys["merchant"])}
        )
        assert signed_in.status_code == 400, signed_in.text
        assert "nested" in signed_in.json()["detail"]
        assert served.alive()
        assert http.get("/openapi.json").status_code == 200
