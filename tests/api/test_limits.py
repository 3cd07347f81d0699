"""The request gate (:mod:`api.limits`): the head capped (431), credentials checked before a body is read
(401), the media type (415), the size (413, also for a chunked body, without reading past the limit), and a
JSON body's encoding and nesting (400) refused before any parser or handler code runs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.bodies import MULTIPART_ENVELOPE
from api.limits import PAGE_DRAIN_FACTOR, RequestGate, json_depth_exceeds
from api.observability import Observed
from ledger_service.settings import Settings
from tests.api.conftest import ApiEnv, bearer, return_token
from tests.api.flows import POLICY, problem

HUGE = 20 * 1024 * 1024
ID = "0x" + "ab" * 32


def json_as(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", **bearer(key)}


def gate_of(client: TestClient) -> RequestGate:
    """The request gate of the served stack (behind the request-id and metrics layer, api.observability)."""
    assert isinstance(client.app, Observed) and isinstance(client.app.app, RequestGate)
    return client.app.app


def settings_of(client: TestClient) -> Settings:
    settings = gate_of(client).state.settings
    assert isinstance(settings, Settings)
    return settings


class Exchange:
    """One request sent straight to the gate, recording how much of its body was read."""

    def __init__(self, client: TestClient, method: str, path: str, headers: dict[str, str], chunks: list[bytes]):
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
            "state": {},
        }
        self._gate = gate_of(client)
        self._chunks = list(chunks)
        self.read = 0
        self.status: int | None = None
        self.body = b""

    async def _receive(self) -> dict[str, Any]:
        if not self._chunks:
            return {"type": "http.disconnect"}
        chunk = self._chunks.pop(0)
        self.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(self._chunks)}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def run(self) -> Exchange:
        asyncio.run(self._gate(self.scope, self._receive, self._send))  # type: ignore[arg-type]
        return self

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        assert body["status"] == self.status and body["detail"]
        return body


def operations(client: TestClient) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in gate_of(client).api.openapi()["paths"].items():
        for method, operation in item.items():
            yield method.upper(), re.sub(r"\{[^}]+\}", ID, path), operation


# ---- credentials before the body ------------------------------------------------------------------------


def _optional(operation: dict[str, Any]) -> bool:
    """Credentials optional: the empty requirement {} among the operation's security."""
    return any(not requirement for requirement in operation.get("security", []))


def test_every_route_with_security_refuses_a_body_without_credentials_unread(client: TestClient) -> None:
    secured = [(m, p) for m, p, op in operations(client) if op.get("security") and not _optional(op)]
    assert len(secured) >= 15
    for method, path in secured:
        for headers in (
            {"Content-Type": "application/json", "Content-Length": str(HUGE)},
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            {"Content-Length": str(HUGE), "Authorization": "Bearer rlk_" + "A" * 43},  # unknown key
        ):
            sent = Exchange(client, method, path, headers, [b"[" * 65536] * 320).run()
            assert sent.status == 401, (method, path, sent.body)
            assert sent.read == 0, (method, path)
            assert "Authorization" in sent.problem()["detail"] or "key" in sent.problem()["detail"]


def test_optional_credentials_are_checked_only_when_sent(client: TestClient, keys: dict[str, str]) -> None:
    optional = [(m, p) for m, p, op in operations(client) if _optional(op)]
    assert ("POST", "/v1/assistant/messages") in optional
    for method, path in optional:
        # sent: an unknown token or a key is refused before the body is read
        for authorization in ("ReturnToken rrt_" + "A" * 43, bearer(keys["merchant"])["Authorization"]):
            headers = {"Content-Length": str(HUGE), "Authorization": authorization}
            sent = Exchange(client, method, path, headers, [b"[" * 65536] * 320).run()
            assert sent.status == 401 and sent.read == 0, (method, path, sent.body)
        # not sent: the body is read (and measured: a body over the JSON limit is a 413)
        anonymous = Exchange(
            client,
            method,
            path,
            {"Content-Type": "application/json", "Content-Length": str(HUGE)},
            [b" " * 65536] * 320,
        ).run()
        assert anonymous.status == 413, (method, path, anonymous.body)


def test_the_gate_speaks_as_the_dependencies_do(client: TestClient, keys: dict[str, str]) -> None:
    # a key where a return token is needed: the same sentence as ConsumerDep's, before the body
    sent = Exchange(
        client, "POST", "/v1/returns", {"Content-Length": str(HUGE), **bearer(keys["merchant"])}, [b"{}"]
    ).run()
    assert sent.status == 401 and sent.read == 0
    assert "needs a return token" in sent.problem()["detail"]
    answer = client.post("/v1/returns", json={}, headers=bearer(keys["merchant"]))
    assert problem(answer, 401)["detail"] == sent.problem()["detail"]
    twice = Exchange(client, "POST", "/v1/sales", {"Content-Length": "2"}, [b"{}"])
    twice.scope["headers"] += [(b"authorization", bearer(keys["merchant"])["Authorization"].encode())] * 2
    assert twice.run().status == 401 and twice.read == 0
    assert "2 Authorization headers" in twice.problem()["detail"]


def test_an_api_path_with_a_trailing_slash_is_a_404_not_a_redirect(client: TestClient, keys: dict[str, str]) -> None:
    # a redirect would be undocumented and would not look at the credentials (found by the fuzzer: two
    # Authorization headers on DELETE /v1/webhooks/ were answered 307)
    for method in ("GET", "DELETE", "POST"):
        answer = client.request(method, "/v1/webhooks/", headers=bearer(keys["merchant"]), follow_redirects=False)
        assert "try /v1/webhooks" in problem(answer, 404)["detail"]
    assert client.get("/v1/webhooks", headers=bearer(keys["merchant"])).status_code == 200


def test_a_slash_path_a_route_takes_for_another_method_is_a_405(client: TestClient, keys: dict[str, str]) -> None:
    # GET /v1/epcis/events/{event_id:path} takes "/v1/epcis/events/" (an empty id, answered by the route); a
    # POST there is a method the path does not allow, as on any other path (found by the fuzzer: it was a 404)
    answer = client.post("/v1/epcis/events/", headers=bearer(keys["merchant"]), json={})
    problem(answer, 405)
    assert answer.headers["allow"] == "GET"


def test_valid_credentials_reach_the_route(client: TestClient, keys: dict[str, str]) -> None:
    # the gate verified the key; the route's dependencies reuse it (a 422 comes from the route's validation)
    answer = client.post("/v1/merchants/me/policy", json={"window_days": "soon"}, headers=bearer(keys["merchant"]))
    assert problem(answer, 422)["errors"]
    answer = client.post("/v1/merchants/me/policy", json=POLICY, headers=bearer(keys["carrier"]))
    problem(answer, 403)


# ---- size ------------------------------------------------------------------------------------------


def test_a_body_announced_too_large_is_refused_unread(client: TestClient, keys: dict[str, str]) -> None:
    limit = settings_of(client).api_json_max_bytes
    headers = {"Content-Type": "application/json", "Content-Length": str(limit + 1), **bearer(keys["merchant"])}
    sent = Exchange(client, "POST", "/v1/merchants/me/policy", headers, [b" " * (limit + 1)]).run()
    assert sent.status == 413 and sent.read == 0
    assert str(limit) in sent.problem()["detail"]


def test_a_chunked_body_is_refused_once_it_passes_the_limit(client: TestClient, keys: dict[str, str]) -> None:
    limit = settings_of(client).api_json_max_bytes
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **bearer(keys["merchant"])}
    chunk = b" " * 4096
    sent = Exchange(client, "POST", "/v1/merchants/me/policy", headers, [chunk] * (HUGE // len(chunk))).run()
    assert sent.status == 413
    assert limit < sent.read <= limit + len(chunk)  # read up to the limit, not a byte of the next chunk more
    # the same through HTTP: a generator body is sent chunked
    answer = client.post(
        "/v1/merchants/me/policy",
        content=(chunk for _ in range(limit // len(chunk) + 2)),
        headers={"Content-Type": "application/json", **bearer(keys["merchant"])},
    )
    problem(answer, 413)


def test_a_body_to_a_route_without_one_is_never_read(client: TestClient, keys: dict[str, str]) -> None:
    headers = {"Transfer-Encoding": "chunked", **bearer(keys["merchant"])}
    sent = Exchange(client, "POST", f"/v1/returns/{ID}/approve", headers, [b"x" * 65536] * 320).run()
    assert sent.status is not None and sent.status < 500
    assert sent.read == 0


# ---- media type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None],
)
def test_a_json_route_refuses_another_media_type(
    client: TestClient, keys: dict[str, str], content_type: str | None
) -> None:
    headers = bearer(keys["merchant"])
    if content_type is not None:
        headers["Content-Type"] = content_type
    answer = client.post("/v1/merchants/me/policy", content=json.dumps(POLICY).encode(), headers=headers)
    assert "application/json" in problem(answer, 415)["detail"] or "UTF-8" in answer.json()["detail"]


def test_json_media_types_are_accepted(client: TestClient, keys: dict[str, str]) -> None:
    for content_type in ("application/json", "application/json; charset=UTF-8", "application/merge-patch+json"):
        answer = client.post(
            "/v1/merchants/me/policy",
            content=json.dumps({**POLICY, "window_days": "soon"}).encode(),
            headers={"Content-Type": content_type, **bearer(keys["merchant"])},
        )
        problem(answer, 422)  # past the gate: the route's validation speaks


def test_an_upload_must_be_multipart(client: TestClient, keys: dict[str, str]) -> None:
    answer = client.post(
        "/v1/documents", content=b"%PDF-1.7", headers={"Content-Type": "application/pdf", **bearer(keys["merchant"])}
    )
    assert "multipart/form-data" in problem(answer, 415)["detail"]


# ---- encoding, parsing, nesting --------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_a_400(client: TestClient, keys: dict[str, str]) -> None:
    body = json.dumps({**POLICY, "title": "Politique é"}, ensure_ascii=False).encode("latin-1")
    answer = client.post(
        "/v1/merchants/me/policy",
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["merchant"])},
    )
    assert "UTF-8" in problem(answer, 400)["detail"]
    utf16 = json.dumps(POLICY).encode("utf-16")
    answer = client.post(
        "/v1/merchants/me/policy",
        content=utf16,
        headers={"Content-Type": "application/json", **bearer(keys["merchant"])},
    )
    problem(answer, 400)


@pytest.mark.parametrize("body", [b"{", b"{'window_days': 30}", b"[1,]", b"NaN-ish", b'{"a": 1} {"b": 2}'])
def test_a_body_that_is_not_json_is_a_400(client: TestClient, keys: dict[str, str], body: bytes) -> None:
    answer = client.post(
        "/v1/merchants/me/policy",
        content=body,
        headers={"Content-Type": "application/json", **bearer(keys["merchant"])},
    )
    assert "not valid JSON" in problem(answer, 400)["detail"]


def test_nesting_past_the_limit_is_a_400_and_at_the_limit_reaches_validation(
    client: TestClient, keys: dict[str, str]
) -> None:
    depth = settings_of(client).api_json_max_depth
    headers = {"Content-Type": "application/json", **bearer(keys["merchant"])}

    def nested(levels: int) -> bytes:  # the policy object is level 1
        return json.dumps({**POLICY, "title": json.loads("[" * (levels - 1) + "]" * (levels - 1))}).encode()

    too_deep = client.post("/v1/merchants/me/policy", content=nested(depth + 1), headers=headers)
    assert f"more than {depth} levels" in problem(too_deep, 400)["detail"]
    problem(client.post("/v1/merchants/me/policy", content=nested(depth), headers=headers), 422)
    # the crash's body: anonymous is a 401, authenticated a 400 (never the json decoder)
    problem(client.post("/v1/returns", content=b"[" * 100_000, headers={"Content-Type": "application/json"}), 401)
    problem(client.post("/v1/merchants/me/policy", content=b"[" * 100_000, headers=headers), 400)
    problem(client.post("/v1/returns", content=b"[" * 100_000, headers=return_token("rrt_" + "A" * 43)), 401)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\u00e9\n'),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\x'), children, max_size=4)
    ),
    max_leaves=40,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(value=_JSON, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_the_byte_scan_measures_depth_as_a_parser_does(value: object, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    depth = _depth(value)
    for limit in range(max(0, depth - 2), depth + 3):
        assert json_depth_exceeds(body, limit) == (depth > limit), (body, limit)


# ---- the head ------------------------------------------------------------------------------------------


def test_headers_too_large_are_a_431_on_every_path(client: TestClient, keys: dict[str, str]) -> None:
    settings = settings_of(client)
    big = {"X-Padding": "p" * settings.api_max_header_bytes}
    many = {f"X-Header-{n}": "1" for n in range(settings.api_max_headers + 1)}
    for headers in (big, many):
        for method, path in (
            ("GET", f"/v1/items/{ID}/eligibility"),  # the shortcut's path
            ("GET", "/v1/verify/urn:epc:id:sgtin:0614141.107346.2017"),
            ("POST", "/v1/returns"),
            ("GET", "/nowhere"),
        ):
            answer = client.request(method, path, headers={**headers, **bearer(keys["auditor"])})
            assert "headers" in problem(answer, 431)["detail"]
    # below the limits, the same requests are answered
    assert client.get(
        f"/v1/items/{ID}/eligibility", headers={"X-Padding": "p" * 1000, **bearer(keys["auditor"])}
    ).is_success


def test_the_openapi_document_lists_the_gates_answers(client: TestClient) -> None:
    for method, path, operation in operations(client):
        responses = operation["responses"]
        assert "431" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), (method, path)


def test_settings_bound_the_limits(api_env: ApiEnv) -> None:
    assert api_env.settings.api_json_max_bytes < api_env.settings.document_max_bytes
    with pytest.raises(ValueError, match="api_json_max_depth"):
        Settings(_env_file=None, api_json_max_depth=1)  # type: ignore[call-arg]


def test_the_gate_finds_every_operations_policy(client: TestClient) -> None:
    gate = gate_of(client)
    for method, path, operation in operations(client):
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        policy = gate.policy(scope)
        assert policy.schemes == {name for req in operation.get("security", []) for name in req}, (method, path)
        assert policy.media_types == set(operation.get("requestBody", {}).get("content", {})), (method, path)
    assert not gate.policy({"type": "http", "method": "PUT", "path": "/v1/sales", "root_path": ""}).schemes


# ---- a page form's refused body ------------------------------------------------------------------------


def test_a_page_forms_refused_body_goes_to_the_page_read_and_dropped_up_to_a_bound(client: TestClient) -> None:
    """The page answers (in its reader's language, with the text fields at the body's start); the body is
    read to its end so that a browser still sending gets that answer, but never past PAGE_DRAIN_FACTOR
    times the limit."""
    limit = settings_of(client).document_max_bytes + MULTIPART_ENVELOPE
    chunk = b"x" * 65536
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Accept-Language": "zh-CN"}
    small = -(-(limit + 1) // len(chunk))  # just past the limit
    sent = Exchange(client, "POST", "/returns", headers | {"Content-Length": str(small * len(chunk))}, [chunk] * small)
    sent.run()
    assert sent.status == 401 and b"<html" in sent.body  # the page: no session, so the open page says so
    assert sent.read == small * len(chunk)  # drained to the end
    huge = PAGE_DRAIN_FACTOR * limit // len(chunk) + 40
    endless = Exchange(client, "POST", "/returns", headers | {"Content-Length": str(huge * len(chunk))}, [chunk] * huge)
    endless.run()
    assert endless.status == 401
    assert PAGE_DRAIN_FACTOR * limit <= endless.read <= PAGE_DRAIN_FACTOR * limit + 2 * len(chunk)
    api = Exchange(client, "POST", "/v1/documents", {"Content-Length": str(HUGE)}, [chunk] * 4)
    assert api.run().status == 401 and api.read == 0  # the API's routes are refused as before, unread
