"""Fuzzing the served application with raw requests: no request, however malformed, gets a 5xx, crashes the
process or leaks a credential; every error is a problem+json with a sentence, with a status the OpenAPI
document lists for the route.

Hypothesis generates, for each operation of ``/openapi.json`` (one test each, so a failure names its
route), requests a client could put on the wire, after the one every JSON operation gets first (100,000
nested arrays, no credentials): bodies of random bytes, JSON of random shape and depth (up to 120,000),
the operation's own valid body (drawn from its schema) with one field given a wrong type, a huge number,
NUL, unpaired surrogates or bidi controls, a field dropped or an unknown field added, text that is not
UTF-8; headers with the right, another role's, a garbled, a duplicated or a huge credential, each media
type, ``Content-Length`` lies, huge and numerous headers; the seeded ids or random ones in the path,
random query values. Another test does the same over methods and paths that no operation serves. Each
request goes to the application as it is served (:func:`api.main.serving_app`, the eligibility shortcut
in front) in this process, on the event loop of a started ``TestClient``, against the real anvil and
SQLite index of the module (:mod:`tests.api.asgi_fuzz`), with the recursion limit a served process has
(Hypothesis lowers it while an example runs, which would hide a crash in a C parser).

Bounded: ``FUZZ_EXAMPLES`` requests per operation, derandomized when ``CI=true`` (the same requests on
every run: a failure in CI is reproduced by running the test again) with no example database; locally
random, with Hypothesis' example database (``.hypothesis/``), which replays a failure first on the next
run. A failure prints the minimal request. A request that kills the process (a segfault in a C
extension) is written to the file named by ``FUZZ_TRACE`` before it is sent: ``scripts/test.sh`` prints it
when the stage dies by a signal. These tests are marked ``fuzz``: ``scripts/test.sh`` runs them as their own
stage, so a crash ends that stage, not the service tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from tests.api.asgi_fuzz import RawRequest, call, check, documented_statuses, route_of, serving_recursion_limit
from tests.api.conftest import ApiEnv
from tests.api.seeded import CREDENTIALS, Seeded, seed

pytestmark = pytest.mark.fuzz

IN_CI = os.environ.get("CI", "").lower() == "true"
FUZZ_EXAMPLES = 120 if IN_CI else 40
MAX_DEPTH = 120_000
"""Deepest JSON nesting generated: beyond any limit a JSON route may set, and beyond what a C parser can
recurse into on a thread's stack when nothing stops it."""

CI_DATABASE: dict[str, Any] = {"database": None} if IN_CI else {}
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=IN_CI,
    deadline=None,
    print_blob=True,
    report_multiple_bugs=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    **CI_DATABASE,
)

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff\ud800",
    "\u202egpj.exe",
    "\u2066x\u2069",
    "\ufeff",
    "\r\n",
    "../../etc/passwd",
    "%00",
    "%zz",
    "0x",
    "0x" + "g" * 64,
    "0X" + "AB" * 32,
    "null",
    "-1",
    "1e309",
    "NaN",
    "\u0663",
    "\U0001f4a9" * 3,
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "rr_" + "0" * 32,
    "a" * 70_000,
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(NASTY_TEXT)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
MEDIA_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "APPLICATION/JSON",
    "application/problem+json",
    "application/vnd.api+json",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
    "garbage",
    "application/json, text/plain",
]


@pytest.fixture(scope="module")
def seeded(client: TestClient, api_env: ApiEnv, keys: dict[str, str]) -> Seeded:
    return seed(client, api_env, keys)


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("FUZZ_TRACE")
    return Path(named) if named else tmp_path_factory.mktemp("fuzz") / "last-request.txt"


@pytest.fixture(scope="module")
def schema(spec: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(spec)


def _fastapi(client: TestClient) -> FastAPI:
    """The FastAPI application inside what is served (the eligibility shortcut and any layer in front of it,
    each holding the next as ``app``)."""
    app: Any = client.app
    while not isinstance(app, FastAPI):
        app = app.app
    return app


# ---- strategies ---------------------------------------------------------------------------------------


def _dump(value: Any, *, ascii_only: bool) -> bytes:
    # Unpaired surrogates survive ensure_ascii (as \ud800 escapes); without it they become bytes that are
    # not UTF-8, which the API must refuse as such.
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def nested_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=200) | st.sampled_from([1_000, 20_000, 100_000, MAX_DEPTH]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    closed = draw(st.booleans())
    return opener * depth + b"1" + (closer * depth if closed else b"")


@st.composite
def mutated_body(draw: st.DrawFn, operation: Any, seeded: Seeded, known: frozenset[str]) -> tuple[bytes, str | None]:
    """The operation's valid body (from its schema) with one thing wrong, or nothing; and why the API must
    refuse it, when it must: a field the operation does not know (strict models refuse unknown fields)."""
    case = draw(operation.as_strategy(GenerationMode.POSITIVE))
    body = dict(case.body) if isinstance(case.body, dict) else {}
    for name in ("item_id",):
        if name in body and draw(st.booleans()):
            body[name] = seeded.ids[name]
    fields = sorted(body) or ["item_id"]
    how = draw(st.sampled_from(["none", "wrong", "wrong", "drop", "extra", "huge_number", "nasty"]))
    if how == "wrong":
        body[draw(st.sampled_from(fields))] = draw(JSON_VALUES)
    elif how == "drop" and body:
        body.pop(draw(st.sampled_from(sorted(body))))
    elif how == "extra":
        body[draw(st.text(min_size=1, max_size=20))] = draw(JSON_VALUES)
    elif how == "nasty":
        body[draw(st.sampled_from(fields))] = draw(st.sampled_from(NASTY_TEXT))
    unknown = sorted(set(body) - known)
    refusal = f"unknown fields {unknown}" if unknown else None
    if how == "huge_number":  # past Python's int parsing limit (4,300 digits) too
        body[draw(st.sampled_from(fields))] = "HUGE"
        digits = draw(st.integers(min_value=20, max_value=20_000))
        return _dump(body, ascii_only=True).replace(b'"HUGE"', b"9" * digits), refusal
    return _dump(body, ascii_only=draw(st.booleans())), refusal


def _body_fields(spec: dict[str, Any], operation: dict[str, Any]) -> frozenset[str]:
    """The fields of an operation's JSON body (its schema's properties; a ``$ref`` or ``anyOf`` resolved)."""
    node = operation["requestBody"]["content"]["application/json"]["schema"]
    fields: set[str] = set()
    pending = [node]
    while pending:
        node = pending.pop()
        if "$ref" in node:
            pending.append(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
        pending += node.get("anyOf", []) + node.get("allOf", [])
        fields |= set(node.get("properties", {}))
    return frozenset(fields)


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart/form-data body (and its Content-Type) with one part, more, or a broken envelope."""
    boundary = draw(st.sampled_from(["fuzzb0undary", "x", "a" * 71]))
    content = draw(
        st.sampled_from([b"", b"%PDF-1.7\n%...\n", b"\x7fELF\x02\x01\x01", b"plain text\n", b"\xff\xfe\x00"])
        | st.binary(max_size=300)
    )
    part_type = draw(st.sampled_from(["application/pdf", "text/plain; charset=utf-8", "text/plain; charset=x"]))
    name = draw(st.sampled_from(["file", "document", ""]))
    filename = draw(st.sampled_from(["report.pdf", "", "../../x", "\u202egpj.exe", "a" * 300]))
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {part_type}\r\n\r\n"
    ).encode("utf-8", "surrogatepass")
    body = part + content + f"\r\n--{boundary}--\r\n".encode()
    if draw(st.booleans()):
        body = body[: draw(st.integers(min_value=0, max_value=len(body)))]
    media_type = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data"]))
    return body, media_type


def _encode_path(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe="", errors="surrogatepass"))
    return path


@st.composite
def path_value(draw: st.DrawFn, name: str, seeded: Seeded) -> str:
    hex64 = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(NASTY_TEXT),
        st.text(max_size=80),
        hex64.map(lambda h: "0x" + h),
        st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda h: "rr_" + h),
    ]
    if name in seeded.ids:
        options = [st.just(seeded.ids[name])] * 3 + options
    return draw(st.one_of(options))


@st.composite
def authorization(draw: st.DrawFn, who: str | None, seeded: Seeded) -> list[tuple[bytes, bytes]]:
    own = [(b"authorization", seeded.headers[who]["Authorization"].encode())] if who else []
    other = (b"authorization", seeded.headers[draw(st.sampled_from(sorted(seeded.headers)))]["Authorization"].encode())
    how = draw(st.sampled_from(["own"] * 10 + ["none", "other", "garbage", "duplicate", "huge", "scheme"]))
    if how == "own":
        return own
    if how == "other":
        return [other]
    if how == "garbage":
        return [(b"authorization", draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b""))]
    if how == "duplicate":
        return [*own, other] if draw(st.booleans()) else [other, *own]
    if how == "huge":
        return [(b"authorization", b"Bearer rlk_" + b"A" * draw(st.integers(min_value=1000, max_value=200_000)))]
    if how == "scheme" and own:
        value = own[0][1]
        scheme, _, secret = value.partition(b" ")
        variant = draw(st.sampled_from([scheme.lower(), scheme.upper(), b"Basic", b"Token", b""]))
        return [(b"authorization", variant + b" " + secret)]
    return []


@st.composite
def other_headers(draw: st.DrawFn, body: bytes) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    length = draw(st.sampled_from(["right", "right", "none", "zero", "short", "long", "negative", "junk", "two"]))
    lengths: dict[str, list[str]] = {
        "right": [str(len(body))],
        "zero": ["0"],
        "short": [str(max(0, len(body) - 1))],
        "long": [str(len(body) + 100_000)],
        "negative": ["-1"],
        "junk": [draw(st.sampled_from(["12abc", "9" * 40, " 1", "0x10"]))],
        "two": [str(len(body)), "0"],
    }
    out += [(b"content-length", v.encode()) for v in lengths.get(length, [])]
    if draw(st.booleans()):
        out.append((b"idempotency-key", draw(st.binary(max_size=300)).replace(b"\r", b"").replace(b"\n", b"")))
    extra = draw(st.sampled_from(["none", "none", "huge", "many", "accept"]))
    if extra == "huge":
        out.append((b"x-fuzz", b"a" * draw(st.integers(min_value=8_000, max_value=1_000_000))))
    elif extra == "many":
        out += [(f"x-fuzz-{i}".encode(), b"1") for i in range(draw(st.integers(min_value=100, max_value=3_000)))]
    elif extra == "accept":
        out.append((b"accept", draw(st.sampled_from([b"text/csv", b"application/xml", b"*/*", b"\xff"]))))
    return out


@st.composite
def query(draw: st.DrawFn, names: list[str]) -> bytes:
    pairs: list[tuple[str, str]] = []
    for name in names:
        if draw(st.booleans()):
            plain = st.sampled_from(["true", "false"]) if name == "wait" else st.sampled_from(["1", "10", "json"])
            odd = st.sampled_from(["1", "0", "yes", "-1", "99999999999999999999", "\x00"]) | st.text()
            value = draw(st.one_of(plain, plain, odd))
            pairs.append((name, value))
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from([b"%zz", b"a=%00", b"&&=&", b"wait=true&wait=false", b"x=" + b"y" * 70_000]))
    if draw(st.integers(0, 5)) == 0:
        pairs.append((draw(st.text(min_size=1, max_size=10)), draw(st.text(max_size=10))))
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


@st.composite
def requests_for(
    draw: st.DrawFn, method: str, path: str, spec: dict[str, Any], schema: Any, seeded: Seeded
) -> RawRequest:
    operation = spec["paths"][path][method.lower()]
    parameters = operation.get("parameters", [])
    path_values = {p["name"]: draw(path_value(p["name"], seeded)) for p in parameters if p["in"] == "path"}
    query_names = [p["name"] for p in parameters if p["in"] == "query"]
    content = operation.get("requestBody", {}).get("content", {})
    media: str | None = "application/json"
    refusal: str | None = None
    if "application/json" in content:
        kind = draw(st.sampled_from(["valid", "valid", "valid", "json", "bytes", "nested", "empty"]))
        if kind == "valid":
            body, refusal = draw(mutated_body(schema[path][method], seeded, _body_fields(spec, operation)))
        elif kind == "json":
            body = _dump(draw(JSON_VALUES), ascii_only=draw(st.booleans()))
        elif kind == "bytes":
            body = draw(st.binary(max_size=500))
        elif kind == "nested":
            body = draw(nested_json())
        else:
            body = b""
        media = draw(st.sampled_from(["application/json"] * 30 + MEDIA_TYPES + [None]))
    elif "multipart/form-data" in content:
        body, media = draw(multipart_body())
        if draw(st.integers(0, 4)) == 0:
            media = draw(st.sampled_from([*MEDIA_TYPES, None]))
    else:  # a body nobody asked for must not change the answer's kind
        body = draw(st.sampled_from([b""] * 6 + [b"{}", b"[[[[", b"\xff\xfe"]))
        media = draw(st.sampled_from([None, "application/json"]))
    headers = draw(authorization(CREDENTIALS[(method, path)], seeded))
    if media is not None:
        headers.append((b"content-type", media.encode("latin-1")))
    headers += draw(other_headers(body))
    return RawRequest(
        method=method,
        path=_encode_path(path, path_values),
        query=draw(query(query_names)),
        headers=tuple(draw(st.permutations(headers))),
        body=body,
        chunks=draw(st.integers(min_value=1, max_value=3)),
        must_refuse=refusal,
        client=draw(
            st.sampled_from(["127.0.0.1", "::1"])
            | st.integers(1, 2**24 - 2).map(lambda n: f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}")
        ),
    )


@st.composite
def stray_requests(draw: st.DrawFn, spec: dict[str, Any], seeded: Seeded) -> RawRequest:
    """Methods and paths beside the documented operations: wrong methods, unknown or mangled paths."""
    templates = sorted(spec["paths"])
    template = draw(st.sampled_from(templates))
    names = ("address", "item_id", "return_id", "request_id", "cid", "code")
    path = _encode_path(template, {name: seeded.ids.get(name, "x") for name in names})
    mangled = draw(
        st.sampled_from(
            [
                path,
                path + "/",
                "/" + path,
                path + "/extra",
                path.replace("/v1/", "/v2/"),
                "/v1/../v1" + path.removeprefix("/v1"),
                "/v1/%2e%2e/openapi.json",
                "/static-offline-docs/..%2f..%2fpyproject.toml",
                "/static-offline-docs/%00",
                "/docs/oauth2-redirect",
                "/" + "a/" * 2000,
            ]
        )
        | st.text(min_size=1, max_size=60).map(lambda s: "/" + quote(s, safe="/", errors="surrogatepass"))
    )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FUZZ"]))
    who = draw(st.sampled_from([None, *sorted(seeded.headers)]))
    headers = [(b"authorization", seeded.headers[who]["Authorization"].encode())] if who else []
    body = draw(st.sampled_from([b"", b"{}", b"[" * 1000]))
    headers.append((b"content-type", b"application/json"))
    return RawRequest(method=method, path=mangled, headers=tuple(headers), body=body)


# ---- tests ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The served application and what a run checks its answers against."""

    client: TestClient
    env: ApiEnv
    spec: dict[str, Any]
    seeded: Seeded
    trace: Path
    recursion_limit: int

    def fuzz(
        self,
        strategy: st.SearchStrategy[RawRequest],
        *,
        hands_out_tokens: bool = False,
        examples: Sequence[RawRequest] = (),
    ) -> None:
        """Sends the requests of ``strategy`` (``examples`` first), checking each answer."""
        documented = documented_statuses(self.spec)
        app = _fastapi(self.client)

        def one(request: RawRequest) -> None:
            answer = call(self.client, request, trace=self.trace, recursion_limit=self.recursion_limit)
            check(
                request,
                answer,
                route=route_of(app, request, documented),
                secrets=self.seeded.secrets,
                may_hand_out_tokens=hands_out_tokens,
            )

        test = given(request=strategy)(one)
        for request in examples:
            test = example(request=request)(test)
        FUZZ_SETTINGS(test)()
        # the process is alive (a segfault would have ended it); the index kept up with what was written
        assert self.client.get("/openapi.json").status_code == 200
        assert self.env.indexer.error is None, self.env.indexer.error


@pytest.fixture(scope="module")
def target(client: TestClient, api_env: ApiEnv, spec: dict[str, Any], seeded: Seeded, trace: Path) -> Target:
    return Target(
        client=client,
        env=api_env,
        spec=spec,
        seeded=seeded,
        trace=trace,
        recursion_limit=serving_recursion_limit(),
    )


OPERATIONS = list(CREDENTIALS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_breaks_an_operation(method: str, path: str, target: Target, schema: Any) -> None:
    spec, seeded = target.spec, target.seeded
    examples = []
    if "application/json" in spec["paths"][path][method.lower()].get("requestBody", {}).get("content", {}):
        # always tried first: 100,000 nested arrays, without credentials (about 200 KB)
        nested = b"[" * 100_000 + b"]" * 100_000
        headers = ((b"content-type", b"application/json"), (b"content-length", str(len(nested)).encode()))
        examples.append(RawRequest(method=method, path=_encode_path(path, seeded.ids), headers=headers, body=nested))
    target.fuzz(
        requests_for(method, path, spec, schema, seeded),
        hands_out_tokens=(method, path) == ("POST", "/v1/sales"),
        examples=examples,
    )


def test_no_stray_request_breaks_the_api(target: Target) -> None:
    target.fuzz(stray_requests(target.spec, target.seeded))


def test_every_operation_is_fuzzed(spec: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations == set(OPERATIONS)
