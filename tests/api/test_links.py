"""The OpenAPI links (:mod:`api._links`): each one names an operation that exists, takes values the source's
answer has into parameters the target has, and adding them changes nothing else in the document."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from fastapi.openapi.utils import get_openapi

from api._links import LINKS
from api.main import create_app, problems_in_openapi

APP = create_app()
SPEC = APP.openapi()


def _pointer(schema: dict[str, Any], ref: str) -> Any:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _pointer(schema, node["$ref"])
    properties: dict[str, Any] = node.get("properties", {})
    return properties


def _without_links(document: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(document)
    for item in stripped["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                response.pop("links", None)
    return stripped


def test_links_change_nothing_else() -> None:
    bare = problems_in_openapi(
        get_openapi(title=APP.title, version=APP.version, description=APP.description, routes=APP.routes)
    )
    assert _without_links(SPEC) == bare
    assert _without_links(SPEC) != SPEC  # the served document has them


LINKED = [(source, name, link) for source, links in LINKS.items() for name, link in links.items()]


@pytest.mark.parametrize(("source", "name", "link"), LINKED, ids=[f"{s[0]} {s[1]} {s[2]} {n}" for s, n, _ in LINKED])
def test_link_resolves(source: tuple[str, str, str], name: str, link: dict[str, Any]) -> None:
    method, path, status = source
    answer = SPEC["paths"][path][method.lower()]["responses"][status]
    assert answer["links"][name] == link
    target = _pointer(SPEC, link["operationRef"])
    produced = _properties(SPEC, answer["content"]["application/json"]["schema"])
    expressions = dict(link["parameters"])
    expressions.update({f"body.{field}": value for field, value in link.get("requestBody", {}).items()})
    for parameter, expression in expressions.items():
        location, _, parameter_name = parameter.partition(".")
        field = expression.split("$response.body#/", 1)[1].rstrip("}")
        assert field in produced, f"{name}: the answer has no {field!r}"
        if location == "body":
            body = target["requestBody"]["content"]["application/json"]["schema"]
            assert parameter_name in _properties(SPEC, body), f"{name}: the target's body has no {parameter_name!r}"
        elif location == "header":
            assert parameter_name == "Authorization" and target.get("security"), name
        else:
            declared = {(p["in"], p["name"]) for p in target.get("parameters", [])}
            assert (location, parameter_name) in declared, f"{name}: the target has no {location} {parameter_name!r}"


def test_schemathesis_builds_a_transition_per_link() -> None:
    schema = schemathesis.openapi.from_dict(SPEC)
    schema.config.phases.stateful.inference.algorithms = []
    machine = schema.as_state_machine()
    rules = {name for name in dir(machine) if "__" in name}
    for (method, path, status), links in LINKS.items():
        for name in links:
            assert any(f"{status}_{name}_" in rule for rule in rules), (method, path, status, name)
