"""Every error status the OpenAPI document lists for an operation is one the route really answers, as a
problem+json with a sentence.

The cases are read from the document itself (one test per operation and documented 4xx status), and for
each one a request that must produce that status is built: 400 an unparseable body, 401 no credentials,
403 a credential of a role the route does not serve, 404 an id nothing has, 406 a history in a format not
served, 413 a document over the size limit (or a valid JSON body padded past the JSON limit), 415 a
document of a media type not accepted (or a JSON body sent as text/plain), 422 an invalid field or path
parameter, 431 a header of 1 MiB. Statuses that need a state built on the chain first (409) or many
requests (429) are listed in :data:`NOT_PROVOKED` with where they are tested, and a few the document lists
but no request can produce in :data:`NEVER_ANSWERED`; every other documented status must have a recipe
here, so documenting a new one without proving it fails :func:`test_every_documented_error_is_provoked`.

The other direction, that no route answers a status it does not document, is checked on every generated
request by the fuzzer (:mod:`tests.api.test_fuzz`) and by schemathesis (:mod:`tests.api.test_schemathesis`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from ledger_service.documents.cid import cid_of_bytes
from tests.api.asgi_fuzz import RawRequest, Route, call, check, documented_statuses
from tests.api.carriers import event as carrier_event
from tests.api.carriers import signed
from tests.api.conftest import ApiEnv
from tests.api.epcis_docs import document, event, new_epc
from tests.api.flows import POLICY
from tests.api.seeded import CREDENTIALS, Seeded, seed

SPEC = create_app().openapi()
WEBHOOK = ("POST", "/v1/carriers/{carrier}/webhooks")
DOCUMENTED = documented_statuses(SPEC)

NOT_PROVOKED: dict[int, str] = {
    409: "a conflict with the item's or return's state on the chain: provoked by each route's own tests "
    "(test_sales, test_returns, test_policies, test_items, test_exchanges, test_carriers: a replayed webhook "
    "delivery, test_feedback: feedback on an open return or given over a week ago, test_label_senders: a sender "
    "changed after the label was printed)",
    429: "the /v1/verify and /v1/assistant/messages rate limits: provoked by tests/api/test_verify.py and "
    "tests/api/test_assistant.py",
}
"""Documented statuses this walk does not provoke, and where they are."""

NEVER_ANSWERED: dict[tuple[str, str, int], str] = {
    ("POST", "/v1/documents", 403): "any valid API key or return token may upload",
    ("GET", "/v1/returns/{return_id}", 403): "every role may read returns; another party's return is a 404",
    ("GET", "/v1/returns/{return_id}/tracking", 403): "as the return itself: every role may read it",
    ("GET", "/v1/exchanges/{exchange_id}", 403): "every role may read exchanges; another party's is a 404",
    ("GET", "/v1/epcis/capture/{capture_id}", 403): "any API key may ask; another account's capture is a 404",
    ("GET", "/v1/returns/{return_id}/events", 403): "every role may follow a return; another party's is a 404",
}
"""(method, path, status) the document lists but no request can produce, with why."""

WRONG_ROLE = {
    "manufacturer": "auditor",
    "merchant": "carrier",
    "carrier": "merchant",
    "inspector": "carrier",
    "arbiter": "merchant",
    "auditor": "carrier",
    "consumer": "carrier",
}
"""A credential each role's operations must refuse with 403."""
REFUSED_ROLE = {("GET", "/v1/scans/anchors"): "inspector", ("GET", "/v1/scans/anchors/{anchor_id}"): "inspector"}
"""Operations that serve most roles: a role they refuse (WRONG_ROLE's may be one they serve)."""

OPTIONAL_CREDENTIALS = frozenset({("POST", "/v1/assistant/messages")})
"""Operations anyone may call, that check a credential when one is sent (401: a token nobody issued)."""

UNKNOWN_IDS = {
    "item_id": "0x" + "e1" * 32,
    "return_id": "0x" + "e2" * 32,
    "exchange_id": "0x" + "e8" * 32,
    "request_id": "rr_" + "e3" * 16,
    "address": "0x" + "e4" * 20,
    "cid": str(cid_of_bytes(b"a document nobody stored")),
    "code": "urn:epc:id:sgtin:0614141.107346.nobody",
    "capture_id": "cap_" + "e5" * 16,
    "event_id": quote("ni:///sha-256;" + "e6" * 32 + "?ver=CBV2.0", safe=""),
    "webhook_id": "wh_" + "e7" * 16,
    "carrier": "nobody",
    "batch_id": "999999999",
    "position": "0",
    "anchor_id": "999999999-0",
}
MALFORMED_IDS = {
    "item_id": "0x12",
    "return_id": "0xzz",
    "exchange_id": "0xzz",
    "request_id": "rr_x",
    "address": "0x1234",
    "cid": "not-a-cid",
    "code": "x" * 2049,
    "capture_id": "cap_x",
    "event_id": "not-a-hash-id",
    "webhook_id": "wh_x",
    "carrier": "Not A Carrier!",
    "batch_id": "0",
    "position": "-1",
    "anchor_id": "12",
}

SCAN = {
    "item": "urn:epc:id:sgtin:0614141.107346.nobody",
    "biz_step": "departing",
    "disposition": "in_transit",
    "read_point": "0614141.00777.0",
}
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/merchants/me/policy"): POLICY,
    ("POST", "/v1/sales"): {"item_id": UNKNOWN_IDS["item_id"], "consumer": "0x" + "12" * 20, "price": "1000"},
    ("POST", "/v1/items/{item_id}/delivery"): {"location": "0614141.00888.0"},
    ("POST", "/v1/returns"): {"reason_code": "damaged"},
    ("POST", "/v1/returns/{request_id}/reject"): {"note": "not eligible"},
    ("POST", "/v1/returns/{return_id}/scans"): {"kind": "in_transit"},
    ("POST", "/v1/returns/{return_id}/inspection"): {"passed": True},
    ("POST", "/v1/returns/{return_id}/resolution"): {"consumer_amount": "1"},
    ("POST", "/v1/returns/{return_id}/dispute"): {"comment": "it was not damaged by me"},
    ("POST", "/v1/epcis/capture"): document(event([new_epc()])),
    ("POST", "/v1/webhooks"): {"url": "https://merchant.example/hooks"},
    ("POST", "/v1/webhooks/{webhook_id}/replay"): {},
    ("PUT", "/v1/items/{item_id}/contact"): {"email": "buyer@example.com"},
    ("POST", "/v1/assistant/messages"): {"message": "how many days do I have to return it?"},
    ("POST", "/v1/carriers/{carrier}/webhooks"): {"events": [carrier_event("LR000000014ZZ", "in_transit")]},
    ("PUT", "/v1/returns/{return_id}/feedback"): {"rating": 4, "comment": "quick refund", "lang": "en"},
    ("PUT", "/v1/returns/{return_id}/label-sender"): {"show_as": "initials", "name": "Zhiwei Wang"},
    ("POST", "/v1/scans"): {"scans": [SCAN]},
    ("POST", "/v1/exchanges"): {"replacement_item_id": UNKNOWN_IDS["item_id"], "reason_code": "wrong_size"},
    ("POST", "/v1/exchanges/{request_id}/reject"): {"note": "out of stock"},
    ("POST", "/v1/exchanges/{request_id}/approve"): {"instant": False},
    ("POST", "/v1/exchanges/{exchange_id}/payment"): {"payment_ref": "PAY-1"},
    ("POST", "/v1/exchanges/terms"): {"window_days": 45, "instant": True},
    ("POST", "/v1/exchanges/prices"): {"item_ids": [UNKNOWN_IDS["item_id"]], "price": "1000"},
}
"""Bodies that pass validation (so the status comes from the check under test, not from the body)."""
INVALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/merchants/me/policy"): {**POLICY, "window_days": "thirty"},
    ("POST", "/v1/sales"): {"item_id": "0x12", "consumer": "0x" + "12" * 20, "price": "1000"},
    ("POST", "/v1/items/{item_id}/delivery"): {"location": ""},
    ("POST", "/v1/returns"): {"comment": "no reason given"},
    ("POST", "/v1/returns/{request_id}/reject"): {"note": 5},
    ("POST", "/v1/returns/{return_id}/scans"): {"kind": "teleported"},
    ("POST", "/v1/returns/{return_id}/inspection"): {"grade": "A"},
    ("POST", "/v1/returns/{return_id}/resolution"): {"consumer_amount": "-1"},
    ("POST", "/v1/returns/{return_id}/dispute"): {"comment": ["not", "text"]},
    ("POST", "/v1/epcis/capture"): document({**event([new_epc()]), "action": "TELEPORT"}),
    ("POST", "/v1/webhooks"): {"url": "ftp://merchant.example/hooks"},
    ("POST", "/v1/assistant/messages"): {"message": ""},
    ("POST", "/v1/carriers/{carrier}/webhooks"): {"events": [carrier_event("LR000000014ZZ", "teleported")]},
    ("PUT", "/v1/returns/{return_id}/feedback"): {"rating": 6},
    ("PUT", "/v1/returns/{return_id}/label-sender"): {"show_as": "nickname"},
    ("POST", "/v1/scans"): {"scans": [{**SCAN, "biz_step": "retail_selling"}]},
    ("POST", "/v1/exchanges"): {"replacement_item_id": "0x12", "reason_code": "wrong_size"},
    ("POST", "/v1/exchanges/terms"): {"window_days": 0, "instant": True},
    ("POST", "/v1/exchanges/prices"): {"item_ids": [], "price": "1000"},
}
"""Bodies with one invalid or missing field (a 422 where the route has no path parameter to get wrong)."""
SIZE_LIMIT = 4096
"""The document and EPCIS capture size limits of this module's application (small, so a 413 needs no large
body)."""
JSON_TOO_LARGE = 8 * 1024 * 1024
"""Whitespace added to a valid JSON body to make it larger than a JSON route accepts."""
HEADERS_TOO_LARGE = 1024 * 1024
"""The size of a header that makes a request's headers larger than the API accepts."""


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int

    @property
    def operation(self) -> tuple[str, str]:
        return (self.method, self.path)


CASES = [
    Case(method, path, status)
    for (method, path), statuses in DOCUMENTED.items()
    for status in sorted(statuses)
    if 400 <= status < 500 and status not in NOT_PROVOKED and (method, path, status) not in NEVER_ANSWERED
]


@pytest.fixture(scope="module")
def limited(api_env: ApiEnv) -> ApiEnv:
    """The module's environment with a small document limit (the size the 413 case exceeds)."""
    api_env.settings = api_env.settings.model_copy(
        update={"document_max_bytes": SIZE_LIMIT, "epcis_capture_max_bytes": SIZE_LIMIT}
    )
    return api_env


@pytest.fixture(scope="module")
def client(limited: ApiEnv) -> Any:  # the conftest's client, on the limited settings
    from tests.api.conftest import make_client

    with make_client(limited) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def seeded(client: TestClient, limited: ApiEnv, keys: dict[str, str]) -> Seeded:
    return seed(client, limited, keys)


def _multipart(content: bytes, content_type: str) -> tuple[bytes, bytes]:
    boundary = "documented-errors"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}".encode()


def _request(case: Case, seeded: Seeded) -> RawRequest:
    """The request that must be answered with ``case.status``."""
    operation = SPEC["paths"][case.path][case.method.lower()]
    who = CREDENTIALS[case.operation]
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
    ids = {name: seeded.ids.get(name, UNKNOWN_IDS[name]) for name in names}
    query = b""
    padding = b""
    accept: bytes | None = None
    body: bytes = b""
    media: bytes | None = None
    if case.operation in VALID_BODIES:
        body, media = json.dumps(VALID_BODIES[case.operation]).encode(), b"application/json"
    elif case.operation == ("POST", "/v1/documents"):
        body, media = _multipart(b"%PDF-1.7\n", "application/pdf")
    if case.status == 400:
        body = b'{"unterminated'
        if media is not None and media.startswith(b"multipart/"):
            body = b"--documented-errors\r\nnot a part"
    elif case.status == 401:
        who = "unissued" if case.operation in OPTIONAL_CREDENTIALS else None
    elif case.status == 403:
        assert who is not None, f"{case} is public: it cannot answer 403"
        who = REFUSED_ROLE.get(case.operation) or WRONG_ROLE[who]
    elif case.status == 404:
        if names:
            ids = {name: UNKNOWN_IDS[name] for name in names}
        elif case.operation == ("POST", "/v1/returns"):  # an item that is not the return token's
            body = json.dumps({"item_id": UNKNOWN_IDS["item_id"], "reason_code": "damaged"}).encode()
        elif case.operation == ("POST", "/v1/exchanges"):  # an item that is not the return token's
            body = json.dumps({**VALID_BODIES[case.operation], "item_id": UNKNOWN_IDS["item_id"]}).encode()
        elif case.path.startswith("/v1/analytics/"):  # an auditor asking about a merchant the index does not know
            who, query = "auditor", b"merchant=" + UNKNOWN_IDS["address"].encode()
        elif case.operation == ("POST", "/v1/assistant/messages"):  # anonymous, about a merchant with no policy
            who = None
            body = json.dumps({"message": "what is the return window?", "merchant": UNKNOWN_IDS["address"]}).encode()
        elif case.operation == ("GET", "/v1/analytics/satisfaction"):  # a merchant that never published a policy
            query = b"merchant=" + UNKNOWN_IDS["address"].encode()
    elif case.status == 406:
        accept = b"application/xml"
    elif case.status == 413 and media == b"application/json":  # valid JSON, only too large
        body += b" " * JSON_TOO_LARGE
    elif case.status == 413 and media is None:  # an operation without a body, sent one over the JSON limit
        body, media = b" " * JSON_TOO_LARGE, b"application/json"
    elif case.status == 413:
        body, media = _multipart(b"%PDF-1.7\n" + b"0" * SIZE_LIMIT, "application/pdf")
    elif case.status == 415 and media == b"application/json":
        media = b"text/plain"
    elif case.status == 415:
        body, media = _multipart(b"MZ\x90\x00", "application/x-msdownload")
    elif case.status == 431:
        padding = b"x" * HEADERS_TOO_LARGE
    elif case.status == 422:
        if names:
            ids = {name: MALFORMED_IDS[name] for name in names}
        elif case.operation in INVALID_BODIES:
            body = json.dumps(INVALID_BODIES[case.operation]).encode()
        elif case.operation == ("POST", "/v1/documents"):
            body = body.replace(b'name="file"', b'name="attachment"')
        elif case.operation == ("GET", "/v1/analytics/satisfaction"):
            query = b"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"  # a period that ends before it starts
        elif case.path.startswith("/v1/analytics/"):  # a reversed range
            query = b"from=2026-02-01&to=2026-01-01"
        else:
            query = b"limit=-1"
    else:
        raise AssertionError(f"no recipe for a documented {case.status} (add one, or list it in NOT_PROVOKED)")
    if case.operation == WEBHOOK and case.status not in (401, 413, 415, 431):
        # a carrier's delivery is authenticated by its signature: past it, the status under test decides
        headers_signed = signed(body)
        signature = [(k.encode(), v.encode()) for k, v in headers_signed.items() if k.startswith("webhook-")]
    else:
        signature = []
    path = case.path
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    headers: list[tuple[bytes, bytes]] = []
    if who == "unissued":
        headers.append((b"authorization", b"ReturnToken rrt_" + b"0" * 43))
    elif who is not None:
        headers.append((b"authorization", seeded.headers[who]["Authorization"].encode()))
    if media is not None:
        headers.append((b"content-type", media))
    if accept is not None:
        headers.append((b"accept", accept))
    if padding:
        headers.append((b"x-padding", padding))
    headers.extend(signature)
    headers.append((b"content-length", str(len(body)).encode()))
    return RawRequest(method=case.method, path=path, query=query, headers=tuple(headers), body=body)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.path} {c.status}" for c in CASES])
def test_documented_error_is_answered(case: Case, client: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    request = _request(case, seeded)
    answer = call(client, request, trace=tmp_path / "request.txt")
    route = Route(operation=case.operation, documented=DOCUMENTED[case.operation], kind="operation")
    assert answer.status == case.status, f"{request!r}: {answer.status} {answer.body[:400]!r}"
    check(request, answer, route=route, secrets=seeded.secrets)


def test_every_documented_error_is_provoked() -> None:
    """Every documented 4xx is either walked above or listed, with a reason, as not provoked here."""
    walked = {(c.method, c.path, c.status) for c in CASES}
    for (method, path), statuses in DOCUMENTED.items():
        for status in statuses:
            if 400 <= status < 500:
                known = status in NOT_PROVOKED or (method, path, status) in NEVER_ANSWERED
                assert known or (method, path, status) in walked, (method, path, status)
    for method, path, status in NEVER_ANSWERED:  # an entry goes once the document stops listing it
        assert status in DOCUMENTED[(method, path)], (method, path, status)
