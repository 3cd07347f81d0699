"""The eligibility shortcut (api/fastpath.py): same answers as FastAPI's route, only when everything is plain,
never past a middleware or a dependency it does not know, off by a setting, and errors answered once."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from httpx import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import api.fastpath
import api.routers.items
from api.main import create_app, default_routers, serving_app
from ledger_service.access import _cache
from tests.api.conftest import ApiEnv, bearer, make_client
from tests.api.flows import Flow, Sold, problem


@pytest.fixture(scope="module")
def flow(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Flow:
    made = Flow(client, api_env, keys)
    made.publish(accepted_reasons=["damaged", "changed_mind"], manual_review_reasons=["changed_mind"])
    return made


@pytest.fixture(scope="module")
def sold(flow: Flow) -> Sold:
    return flow.sold_and_delivered()


class Spy:
    """Counts the shortcut's answers (its calls of the route's body builder that returned a body)."""

    def __init__(self) -> None:
        self.answers = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    counter = Spy()
    original = api.routers.items.eligibility_body  # what api.fastpath calls

    async def counting(*args: Any, **kwargs: Any) -> bytes:
        body = await original(*args, **kwargs)
        counter.answers += 1
        return body

    monkeypatch.setattr(api.fastpath, "eligibility_body", counting)
    return counter


_CHECKED_AT = re.compile(rb'"checked_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')


def _same(fastapi: Response, shortcut: Response) -> None:
    assert shortcut.status_code == fastapi.status_code
    assert shortcut.headers.get("content-type") == fastapi.headers.get("content-type")
    assert shortcut.headers.get("content-length") == fastapi.headers.get("content-length")
    # byte for byte but the check's own wall-clock second, which the two requests may straddle
    masked = [_CHECKED_AT.subn(b'"checked_at":"-"', answer.content) for answer in (shortcut, fastapi)]
    assert masked[0] == masked[1]


def _by_fastapi_then_shortcut(
    client: TestClient, spy: Spy, url: str, headers: dict[str, str]
) -> tuple[Response, Response]:
    _cache.clear()  # the credential is not cached: FastAPI answers (and caches it)
    first = client.get(url, headers=headers)
    assert spy.answers == 0
    second = client.get(url, headers=headers)
    return first, second


@pytest.mark.parametrize("who", ["consumer", "merchant", "auditor", "admin"])
@pytest.mark.parametrize("query", ["", "?reason=changed_mind", "?reason=bored"])
def test_the_shortcut_answers_as_the_route_does(flow: Flow, sold: Sold, spy: Spy, who: str, query: str) -> None:
    headers = sold.auth if who == "consumer" else bearer(flow.keys[who])
    url = f"/v1/items/{sold.item_id}/eligibility{query}"
    by_fastapi, by_shortcut = _by_fastapi_then_shortcut(flow.client, spy, url, headers)
    assert spy.answers == 1
    assert by_fastapi.status_code == 200
    _same(by_fastapi, by_shortcut)


def test_an_upper_case_item_id_is_the_same_item(flow: Flow, sold: Sold, spy: Spy) -> None:
    url = f"/v1/items/0x{sold.item_id[2:].upper()}/eligibility"
    by_fastapi, by_shortcut = _by_fastapi_then_shortcut(flow.client, spy, url, sold.auth)
    assert spy.answers == 1 and by_fastapi.json()["item_id"] == sold.item_id
    _same(by_fastapi, by_shortcut)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?reason=changed_mind&reason=damaged", 200),
        ("?reason=changed_mind&other=1", 200),
        ("?other=1", 200),
        ("?reason=", 200),
        ("?reason=" + "x" * 65, 422),
        ("?reason=a%00b", 422),
    ],
)
def test_an_unusual_query_goes_to_fastapi(flow: Flow, sold: Sold, spy: Spy, query: str, status: int) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility{query}"
    first, second = _by_fastapi_then_shortcut(flow.client, spy, url, sold.auth)
    assert spy.answers == 0
    assert first.status_code == second.status_code == status
    _same(first, second)


def test_errors_are_fastapis(flow: Flow, sold: Sold, spy: Spy, api_env: ApiEnv) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility"
    problem(flow.client.get(url), 401)
    problem(flow.client.get(url, headers={"Authorization": "Bearer not-a-key"}), 401)
    problem(flow.client.get(url, headers={"Authorization": "Basic abc"}), 401)
    # a cached key of the wrong role: the shortcut tries, the route's check refuses, FastAPI answers 403
    carrier = bearer(flow.keys["carrier"])
    _cache.clear()
    first = flow.client.get(url, headers=carrier)
    second = flow.client.get(url, headers=carrier)
    assert "carrier key" in problem(first, 403)["detail"]
    _same(first, second)
    # a cached return token of another item: 404 by FastAPI
    other = flow.sold_and_delivered()
    first = flow.client.get(f"/v1/items/{other.item_id}/eligibility", headers=sold.auth)
    second = flow.client.get(f"/v1/items/{other.item_id}/eligibility", headers=sold.auth)
    problem(first, 404)
    _same(first, second)
    # a merchant asking about another merchant's item: 404 by FastAPI
    first = flow.client.get(url, headers=bearer(flow.keys["merchant2"]))
    second = flow.client.get(url, headers=bearer(flow.keys["merchant2"]))
    problem(first, 404)
    _same(first, second)
    assert spy.answers == 0
    # other methods and near-miss paths are routed as before
    assert flow.client.post(url, headers=sold.auth).status_code == 405
    # a trailing slash: the request gate's 404, not Starlette's redirect
    assert (
        "no trailing slash"
        in problem(flow.client.get(f"{url}/", headers=sold.auth, follow_redirects=False), 404)["detail"]
    )
    problem(flow.client.get("/v1/items/0x12/eligibility", headers=sold.auth), 422)
    assert spy.answers == 0


def test_two_authorization_headers_go_to_fastapi(flow: Flow, sold: Sold, spy: Spy) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility"
    flow.client.get(url, headers=sold.auth)  # cached
    spy.answers = 0
    twice = [
        ("Authorization", sold.auth["Authorization"]),
        ("Authorization", bearer(flow.keys["auditor"])["Authorization"]),
    ]
    response = flow.client.get(url, headers=twice)
    assert spy.answers == 0
    assert response.status_code in (200, 401, 404)  # whatever FastAPI makes of it, not the shortcut


def test_an_application_without_the_route_gets_no_shortcut(api_env: ApiEnv) -> None:
    from api.fastpath import EligibilityShortcut
    from api.main import create_app
    from api.routers import policies

    assert EligibilityShortcut(create_app(api_env.settings)).active
    assert not EligibilityShortcut(create_app(api_env.settings, routers=[policies.router])).active


# ---- nothing skipped by accident ----------------------------------------------------------------------


def test_the_one_list_names_exactly_what_fastapi_runs_for_the_route(api_env: ApiEnv) -> None:
    from api.fastpath import SKIPPABLE, fastapi_work, unknown_work

    app = create_app(api_env.settings)
    assert unknown_work(app) == []
    # no stale entry either: the list stays the true account of what the shortcut skips
    assert set(fastapi_work(app)) == set(SKIPPABLE)
    assert all(why.strip() for why in SKIPPABLE.values())


def test_the_served_stack_puts_only_known_layers_in_front_of_the_shortcut() -> None:
    import api.main
    from api.fastpath import IN_FRONT, EligibilityShortcut

    for served in (api.main.asgi, serving_app(create_app())):
        layer: Any = served
        in_front = []
        while not isinstance(layer, EligibilityShortcut):
            in_front.append(f"{type(layer).__module__}.{type(layer).__qualname__}")
            layer = layer.app
        assert in_front == list(IN_FRONT)
        assert isinstance(layer.app, FastAPI)  # nothing between the shortcut and the application it wraps
    served_stack: Any = api.main.asgi  # its layers' .app, walked as above
    assert served_stack.app.app.app is api.main.app


class Counted:
    """How many requests a middleware or a dependency saw."""

    def __init__(self) -> None:
        self.seen = 0


def _cached_twice(client: TestClient, sold: Sold) -> tuple[Response, Response]:
    url = f"/v1/items/{sold.item_id}/eligibility"
    _cache.clear()
    client.get(url, headers=sold.auth)  # FastAPI answers and caches the credential: the shortcut may take the next
    return client.get(url, headers=sold.auth), client.get(url, headers=sold.auth)


def test_a_middleware_the_shortcut_does_not_know_turns_it_off(
    api_env: ApiEnv, flow: Flow, sold: Sold, spy: Spy, log_file: Path
) -> None:
    seen = Counted()

    class Auditing:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.seen += 1
            await self.app(scope, receive, send)

    app = create_app(api_env.settings.model_copy(update={"log_file": log_file}))
    app.add_middleware(Auditing)
    with TestClient(serving_app(app)) as client:
        first, second = _cached_twice(client, sold)
        assert first.status_code == second.status_code == 200
        assert seen.seen == 3 and spy.answers == 0
        assert any("Auditing" in work for work in api.fastpath.unknown_work(app))
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text()
    assert written.count("the eligibility shortcut is off") == 1 and "Auditing" in written


def test_a_dependency_the_shortcut_does_not_know_turns_it_off(
    api_env: ApiEnv, flow: Flow, sold: Sold, spy: Spy
) -> None:
    seen = Counted()

    async def audited(request: Request) -> None:
        seen.seen += 1

    wrapped = APIRouter(dependencies=[Depends(audited)])
    for router in default_routers():
        wrapped.include_router(router)
    with make_client(api_env, routers=[wrapped]) as client:
        first, second = _cached_twice(client, sold)
        assert first.status_code == second.status_code == 200
        assert seen.seen == 3 and spy.answers == 0


def test_a_dependency_override_turns_it_off(api_env: ApiEnv, flow: Flow, sold: Sold, spy: Spy) -> None:
    from api.deps import _principal_of

    app = create_app(api_env.settings)
    with TestClient(serving_app(app)) as client:
        first, second = _cached_twice(client, sold)
        assert spy.answers == 2
        seen = Counted()

        async def overridden(request: Request) -> Any:
            seen.seen += 1
            return await _principal_of(request)

        app.dependency_overrides[_principal_of] = overridden
        first, second = _cached_twice(client, sold)
        assert first.status_code == second.status_code == 200
        assert seen.seen == 3 and spy.answers == 2


def test_the_setting_turns_the_shortcut_off(api_env: ApiEnv, flow: Flow, sold: Sold, spy: Spy) -> None:
    off = api_env.settings.model_copy(update={"api_eligibility_shortcut": False})
    app = create_app(off)
    with TestClient(serving_app(app)) as client:
        first, second = _cached_twice(client, sold)
    assert spy.answers == 0
    _same(first, second)
    assert first.status_code == 200 and first.json()["item_id"] == sold.item_id


# ---- errors: answered once, logged once -------------------------------------------------------------


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """Counts the runs of the route's body builder, by FastAPI's route and by the shortcut together."""
    counted = Counted()
    original = api.routers.items.eligibility_body

    async def counting(*args: Any, **kwargs: Any) -> bytes:
        counted.seen += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(api.routers.items, "eligibility_body", counting)
    monkeypatch.setattr(api.fastpath, "eligibility_body", counting)
    return counted


def test_a_refusal_runs_once_and_is_the_applications_answer(flow: Flow, sold: Sold, runs: Counted) -> None:
    url = f"/v1/items/{sold.item_id}/eligibility"
    carrier = bearer(flow.keys["carrier"])
    _cache.clear()
    by_fastapi = flow.client.get(url, headers=carrier)
    assert runs.seen == 1
    by_shortcut = flow.client.get(url, headers=carrier)
    assert runs.seen == 2  # once more, not twice more
    assert "carrier key" in problem(by_shortcut, 403)["detail"]
    _same(by_fastapi, by_shortcut)
    assert by_shortcut.headers.get("www-authenticate") == by_fastapi.headers.get("www-authenticate")


@pytest.fixture
def log_file(api_env: ApiEnv, tmp_path: Path) -> Iterator[Path]:
    """Where the application started with these settings logs (its lifespan's logging setup); the root
    logger's handlers are restored afterwards."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield tmp_path / "api.log"
    for added in [h for h in root.handlers if h not in handlers]:
        added.close()
    root.handlers[:] = handlers


def test_an_unexpected_error_is_logged_once_then_fastapi_answers(
    api_env: ApiEnv, flow: Flow, sold: Sold, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = Counted()

    async def broken(*args: Any, **kwargs: Any) -> bytes:
        failures.seen += 1
        raise RuntimeError("a bug in the shortcut's copy of the route")

    monkeypatch.setattr(api.fastpath, "eligibility_body", broken)
    app = create_app(api_env.settings.model_copy(update={"log_file": log_file}))
    with TestClient(serving_app(app)) as client:
        first, second = _cached_twice(client, sold)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert failures.seen == 2
    assert first.status_code == second.status_code == 200  # FastAPI's route answered
    _same(first, second)
    written = log_file.read_text()
    assert written.count("the eligibility shortcut failed") == 2  # one line per failed request
    assert written.count("RuntimeError: a bug in the shortcut's copy of the route") == 2
    assert "Traceback (most recent call last)" in written
