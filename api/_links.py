"""OpenAPI links: how an answer feeds the next call in the API's chains, sale -> delivery -> return request ->
approval -> scans -> inspection -> dispute -> resolution, upload -> download, and EPCIS capture -> its job ->
the events it recorded.

They tell a client which id of an answer the next operation takes (and that a sale's ``return_token`` is
the consumer's credential for the item), and they drive schemathesis's stateful tests
(``tests/api/test_schemathesis.py``), which follow them with the ids the API really answered.

Invariants: a link names its target by ``operationRef`` (a JSON pointer into ``paths``: it does not depend on
the names FastAPI generates for operation ids), takes values only from the source's answer body (runtime
expressions ``$response.body#/...``), and is attached to a success status the source documents;
:func:`links_in_openapi` adds ``links`` and changes nothing else in the document.
"""

from __future__ import annotations

from typing import Any

_CONSUMER_CREDENTIAL = "ReturnToken {$response.body#/return_token}"


def _ref(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def _link(
    method: str, path: str, description: str, *, body: dict[str, str] | None = None, **parameters: str
) -> dict[str, Any]:
    """A link to ``method path``; ``parameters`` by location and name (``path_return_id`` -> ``path.return_id``,
    ``header_Authorization`` -> ``header.Authorization``), ``body`` fields of the target's request body."""
    named = {key.replace("_", ".", 1): value for key, value in parameters.items()}
    link: dict[str, Any] = {"operationRef": _ref(method, path), "description": description, "parameters": named}
    if body is not None:
        link["requestBody"] = body
    return link


_ITEM = "$response.body#/item_id"
_RETURN = "$response.body#/return_id"
_REQUEST = "$response.body#/request_id"
_CAPTURE = "$response.body#/captureID"

_RETURN_STEPS = {
    "ReadReturn": ("GET", "/v1/returns/{return_id}", "the return's status and timeline"),
    "ScanReturn": ("POST", "/v1/returns/{return_id}/scans", "the carrier scans the parcel"),
    "CancelReturn": ("POST", "/v1/returns/{return_id}/cancel", "the consumer cancels before shipping"),
    "ReclaimReturn": ("POST", "/v1/returns/{return_id}/reclaim", "the merchant reclaims an unshipped return"),
    "InspectReturn": ("POST", "/v1/returns/{return_id}/inspection", "the inspector records the result"),
    "ClaimUninspected": ("POST", "/v1/returns/{return_id}/claim", "the consumer claims an uninspected return"),
    "DisputeInspection": ("POST", "/v1/returns/{return_id}/dispute", "the consumer disputes a failed inspection"),
    "ResolveDispute": ("POST", "/v1/returns/{return_id}/resolution", "the arbiter splits the disputed deposit"),
}
"""The steps of a return, by link name: each takes the ``return_id`` of the answer it is linked from."""


def _return_steps(*names: str) -> dict[str, Any]:
    """Links from an answer that carries a ``return_id`` to the return's status and to the steps ``names``."""
    return {name: _link(*_RETURN_STEPS[name], path_return_id=_RETURN) for name in ("ReadReturn", *names)}


LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("POST", "/v1/sales", "201"): {
        "DeliverItem": _link("POST", "/v1/items/{item_id}/delivery", "the carrier delivers it", path_item_id=_ITEM),
        "ItemHistory": _link("GET", "/v1/items/{item_id}/history", "the item's history", path_item_id=_ITEM),
        "ItemEligibility": _link(
            "GET",
            "/v1/items/{item_id}/eligibility",
            "may the consumer return it (with the sale's return token)",
            path_item_id=_ITEM,
            header_Authorization=_CONSUMER_CREDENTIAL,
        ),
        "RequestReturn": _link(
            "POST",
            "/v1/returns",
            "the consumer requests a return (with the sale's return token), once the item is delivered",
            body={"item_id": _ITEM},
            header_Authorization=_CONSUMER_CREDENTIAL,
        ),
    },
    ("POST", "/v1/items/{item_id}/delivery", "201"): {
        "ItemHistory": _link("GET", "/v1/items/{item_id}/history", "the item's history", path_item_id=_ITEM),
        "RequestReturn": _link(
            "POST",
            "/v1/returns",
            "the consumer requests a return of the delivered item (with the sale's return token)",
            body={"item_id": _ITEM},
        ),
    },
    ("POST", "/v1/returns", "201"): {
        "ReadRequest": _link("GET", "/v1/returns/{return_id}", "the request's outcome", path_return_id=_REQUEST),
        "ApproveRequest": _link(
            "POST", "/v1/returns/{request_id}/approve", "the merchant approves it", path_request_id=_REQUEST
        ),
        "RejectRequest": _link(
            "POST", "/v1/returns/{request_id}/reject", "the merchant rejects it", path_request_id=_REQUEST
        ),
        **_return_steps("ScanReturn", "CancelReturn", "ReclaimReturn"),
    },
    ("POST", "/v1/returns/{request_id}/approve", "200"): _return_steps("ScanReturn", "CancelReturn", "ReclaimReturn"),
    ("POST", "/v1/returns/{return_id}/scans", "200"): _return_steps("ScanReturn", "InspectReturn", "ClaimUninspected"),
    ("POST", "/v1/returns/{return_id}/inspection", "200"): _return_steps("DisputeInspection", "ResolveDispute"),
    ("POST", "/v1/returns/{return_id}/dispute", "200"): _return_steps("ResolveDispute"),
    **{
        ("POST", f"/v1/returns/{{return_id}}/{step}", "200"): _return_steps()
        for step in ("cancel", "reclaim", "claim", "resolution")
    },
    ("POST", "/v1/documents", "201"): {
        "ReadDocument": _link("GET", "/v1/documents/{cid}", "download it", path_cid="$response.body#/cid"),
    },
    ("POST", "/v1/epcis/capture", "202"): {
        "ReadCaptureJob": _link(
            "GET", "/v1/epcis/capture/{capture_id}", "the capture's state", path_capture_id=_CAPTURE
        ),
    },
    ("GET", "/v1/epcis/capture/{capture_id}", "200"): {
        "CapturedEvents": _link(
            "GET", "/v1/epcis/events", "the events this capture recorded", query_captureID=_CAPTURE
        ),
    },
}
"""(method, path, status) -> the links of that answer, by name."""


def links_in_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with :data:`LINKS` added to the answers they belong to. An application built with other
    routers (tests' probe apps) lacks some operations: a link is added only where its answer and its target
    both exist (tests/api/test_links.py checks that the served application has every one)."""
    paths: dict[str, Any] = schema.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method.lower(), {}).get("responses", {}).get(status)
        if response is None:
            continue
        present = {name: link for name, link in links.items() if _target_exists(paths, link["operationRef"])}
        if present:
            response["links"] = present
    return schema


def _target_exists(paths: dict[str, Any], ref: str) -> bool:
    path, _, method = ref.removeprefix("#/paths/").rpartition("/")
    return method in paths.get(path.replace("~1", "/").replace("~0", "~"), {})
