"""Raw requests against an ASGI application in the test's process, and the checks every answer must pass.

:class:`RawRequest` is what a client can put on the wire: any method, any (percent-encoded) path and query,
any header list (duplicates, lies in ``Content-Length``, bytes that are not ASCII) and any body, in chunks.
:func:`call` hands it to the application as an HTTP server would (the scope uvicorn builds), on the event
loop of a started ``TestClient`` (the application's lifespan ran there), and returns an :class:`Answer`.
Nothing is mocked: the application reads the real store and the real chain.

:func:`check` raises a different :class:`FuzzError` subclass for each kind of failure (5xx, an exception
out of the application, no answer, an error that is not a problem, a status the OpenAPI document does not
list for the route, a secret in an answer, a 2xx for two Authorization headers or an unknown field), each
from its own line: Hypothesis reports every distinct failure with its own minimal example, and its message
names the status, the route and the request.

A fault that kills the process (a segfault in a C extension) cannot be caught in it: before each call the
request is written to ``trace`` (a file), so the stage that ran the fuzzer can print the request that was
in flight when the process died. Requests are served with the recursion limit of a served process
(:func:`serving_recursion_limit`), not the one Hypothesis sets while an example runs.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
ANSWER_TIMEOUT_S = 90.0
"""A request still unanswered after this long is reported as a hang (``?wait=true`` waits at most
``wait_timeout_s``, 20 s in the tests)."""


def _abridged(data: bytes, keep: int = 160) -> str:
    """``data`` for a report: short enough to read, with runs of one byte counted (a nested body of
    100,000 ``[`` shows as ``b'[' * 100000``)."""
    runs: list[str] = []
    literal = b""
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        if j - i > 8:
            runs += [repr(literal)] if literal else []
            runs.append(f"{data[i : i + 1]!r} * {j - i}")
            literal = b""
        else:
            literal += data[i:j]
        i = j
    runs += [repr(literal)] if literal else []
    text = " + ".join(runs) if runs else "b''"
    return text if len(text) <= 3 * keep else f"{text[:keep]} ... {text[-keep:]} ({len(data)} bytes)"


_CREDENTIAL = re.compile(rb"\b(rlk|rrt)_[A-Za-z0-9_-]{8,}")


def _shown(name: bytes, value: bytes) -> str:
    """A header's value for a report; the run's API keys and return tokens cut to their first characters (a
    report may end up in a public CI log; the keys are the run's own, but a log is no place for one)."""
    if name.lower() == b"authorization":
        value = _CREDENTIAL.sub(lambda m: m[0][:8] + b"...", value)
    return _abridged(value, 40)


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    """percent-encoded, as on the request line"""
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    chunks: int = 1
    """the body arrives in this many ``http.request`` messages"""
    must_refuse: str | None = None
    """why the API must answer a 4xx whatever else is wrong or right (e.g. an unknown field)"""
    client: str = "127.0.0.1"
    """the peer's address (per-client limits count by it)"""

    def __repr__(self) -> str:
        headers = ", ".join(f"{name.decode('latin-1')}: {_shown(name, value)}" for name, value in self.headers)
        query = f"?{self.query.decode('latin-1')}" if self.query else ""
        chunks = f" in {self.chunks} chunks" if self.chunks > 1 else ""
        refuse = f" (must be refused: {self.must_refuse})" if self.must_refuse else ""
        peer = f" from {self.client}" if self.client != "127.0.0.1" else ""
        return f"{self.method} {self.path}{query}{peer} [{headers}] body={_abridged(self.body)}{chunks}{refuse}"


@dataclass
class Answer:
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    raised: BaseException | None = None
    timed_out: bool = False

    def header(self, name: bytes) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name]
        return found[0].decode("latin-1") if found else None


def scope_of(request: RawRequest) -> dict[str, Any]:
    """The HTTP scope uvicorn builds for ``request`` (path decoded as uvicorn decodes it)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": (request.client, 40000),
        "scheme": "http",
        "method": request.method,
        "root_path": "",
        "path": unquote(request.path),
        "raw_path": request.path.encode("ascii"),
        "query_string": request.query,
        "headers": [(name.lower(), value) for name, value in request.headers],
        "state": {},
    }


async def _serve(app: Any, request: RawRequest) -> Answer:
    answer = Answer()
    done = anyio.Event()
    size = len(request.body)
    step = max(1, math.ceil(size / request.chunks))
    messages = [
        {"type": "http.request", "body": request.body[i : i + step], "more_body": i + step < size}
        for i in range(0, size, step)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await done.wait()  # the client stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    with anyio.move_on_after(ANSWER_TIMEOUT_S) as scope:
        try:
            await app(scope_of(request), receive, send)
        except Exception as exc:  # what uvicorn would log as an unhandled error and answer with a 500
            answer.raised = exc
    answer.timed_out = scope.cancelled_caught
    done.set()
    return answer


def serving_recursion_limit() -> int:
    """The recursion limit of a process that serves the API: what it is once ``api.main`` is imported, as
    uvicorn imports it, measured in a fresh interpreter (this one's is not: pytest and Hypothesis set their
    own)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, api.main; print(sys.getrecursionlimit())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def call(client: TestClient, request: RawRequest, *, trace: Path, recursion_limit: int | None = None) -> Answer:
    """``request`` served by ``client``'s application, on its event loop; with ``recursion_limit`` (see
    :func:`serving_recursion_limit`) set while it is served. Hypothesis lowers the limit around each example
    (to its caller's depth + 2,000), which would hide what a served process does with a deep structure."""
    trace.write_text(repr(request) + "\n", encoding="utf-8")
    portal = client.portal
    assert portal is not None, "the TestClient must be started (used as a context manager)"
    previous = sys.getrecursionlimit()
    if recursion_limit is not None:
        sys.setrecursionlimit(recursion_limit)
    try:
        answer: Answer = portal.call(_serve, client.app, request)
    finally:
        sys.setrecursionlimit(previous)
    return answer


class FuzzError(AssertionError):
    """An answer the API must never give."""


class ServerError(FuzzError):
    pass


class ApplicationRaisedError(FuzzError):
    pass


class NoAnswerError(FuzzError):
    pass


class NotAProblemError(FuzzError):
    pass


class UndocumentedStatusError(FuzzError):
    pass


class SecretInAnswerError(FuzzError):
    pass


class AcceptedError(FuzzError):
    """A request the API must refuse was carried out (or answered as if it were fine)."""


@dataclass(frozen=True)
class Route:
    """Where the application routes a request: a documented operation (``documented`` lists its statuses),
    another route of the application, a path with other methods (405) or nothing (404)."""

    operation: tuple[str, str] | None
    documented: frozenset[int] | None
    kind: str
    """"operation", "route" (undocumented, e.g. /docs), "method" (path known, method not) or "none"."""

    def allows(self, status: int) -> bool:
        if self.kind == "operation":
            assert self.documented is not None
            return status in self.documented
        if self.kind == "method":
            return status in (405, *BEFORE_ROUTING)
        if self.kind == "none":  # 307: Starlette's redirect to the path without its trailing slash
            return status in (404, 307, *BEFORE_ROUTING)
        return True


BEFORE_ROUTING = (413, 431)
"""What a request gate in front of the routes may answer a request for any path, served or not: a body
announced too large, headers too large. For a documented operation they must be documented too."""


def documented_statuses(spec: dict[str, Any]) -> dict[tuple[str, str], frozenset[int]]:
    """(METHOD, path template) -> the statuses its OpenAPI operation lists (``5XX`` left out: no 5xx may
    come out of a generated request, documented or not)."""
    out: dict[tuple[str, str], frozenset[int]] = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            out[(method.upper(), path)] = frozenset(int(s) for s in operation["responses"] if s.isdigit())
    return out


PATH_PARAMETER_PATTERNS = {"code": r"[\s\S]*"}
"""Path parameters that match more than one segment (``/v1/verify/{code}`` takes the rest of the path, slashes
included); the others match one segment, as Starlette's default convertor does."""


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?:{PATH_PARAMETER_PATTERNS.get(part, '[^/]+')})"
        for i, part in enumerate(parts)
    )
    return re.compile(pattern)


def route_of(app: FastAPI, request: RawRequest, documented: dict[tuple[str, str], frozenset[int]]) -> Route:
    """The route ``request`` reaches: the documented operations are matched by their path templates (in the
    document's order, which is the routes' order), anything else by the application's own routes."""
    scope = scope_of(request)
    method = request.method  # FastAPI's routes answer HEAD only where they declare it
    method_only = False
    for (operation_method, template), statuses in documented.items():
        if _template_pattern(template).fullmatch(scope["path"]):
            if operation_method == method:
                return Route(operation=(method, template), documented=statuses, kind="operation")
            method_only = True
    if method_only:
        return Route(operation=None, documented=None, kind="method")
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return Route(operation=None, documented=None, kind="route")
        method_only = method_only or match is Match.PARTIAL
    return Route(operation=None, documented=None, kind="method" if method_only else "none")


def check(
    request: RawRequest, answer: Answer, *, route: Route, secrets: Sequence[str], may_hand_out_tokens: bool = False
) -> None:
    """Raises a :class:`FuzzError` if ``answer`` is one the API must never give (see the module docstring)."""
    where = f"{request.method} {request.path}"
    if route.operation is not None:
        where += f" ({route.operation[0]} {route.operation[1]})"
    # the request in every message: Hypothesis' own report of a composite's value can come out blank
    sent = f"\n  request: {request!r}"
    body = answer.body.decode("utf-8", "replace")
    if answer.raised is not None:
        raise ApplicationRaisedError(
            f"{where}: the application raised {answer.raised!r} (status {answer.status}){sent}"
        )
    if answer.timed_out or answer.status is None:
        raise NoAnswerError(
            f"{where}: no complete answer within {ANSWER_TIMEOUT_S:.0f} s (status {answer.status}){sent}"
        )
    status = answer.status
    if status >= 500:
        raise ServerError(f"{where}: {status} {body[:600]}{sent}")
    if status >= 400:
        media = (answer.header(b"content-type") or "").split(";")[0].strip()
        try:
            problem = json.loads(answer.body)
        except ValueError:
            problem = None
        if (
            media != PROBLEM_JSON
            or not isinstance(problem, dict)
            or problem.get("status") != status
            or not isinstance(problem.get("title"), str)
            or not isinstance(problem.get("detail"), str)
            or not problem["detail"].strip()
        ):
            raise NotAProblemError(f"{where}: {status} {media or 'without a content type'}: {body[:600]}{sent}")
    authorizations = [v for k, v in request.headers if k.lower() == b"authorization"]
    if len(authorizations) > 1 and status < 400:
        raise AcceptedError(
            f"{where}: {status} with {len(authorizations)} Authorization headers (which one counts?){sent}"
        )
    if request.must_refuse is not None and status < 400:
        raise AcceptedError(f"{where}: {status} for a request with {request.must_refuse}{sent}")
    if not route.allows(status):
        documented = sorted(route.documented) if route.documented is not None else route.kind
        raise UndocumentedStatusError(f"{where}: answered {status}, documented {documented}: {body[:400]}{sent}")
    if not (may_hand_out_tokens and 200 <= status < 300):
        headers = " ".join(v.decode("latin-1") for _, v in answer.headers)
        leaked = [s[:8] + "..." for s in secrets if s in body or s in headers]
        if leaked:
            raise SecretInAnswerError(f"{where}: {status} answer contains credentials {leaked}{sent}")
