"""Sentences for pydantic's own validation errors, where its wording does not tell a person what to do.

:func:`issue_message` is what a 422 problem's ``errors[].msg`` (and its ``detail``) says for one error of a
``RequestValidationError``. The error types raised by this package's validators (``address_checksum``,
``text_bidi_control``, ...) already carry their sentence and pass through unchanged, as do the types not
listed here. The input is quoted back as JSON, shortened: it is the caller's own, but it may be large.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

SHOWN_INPUT_CHARS = 40


def shown(value: Any) -> str:
    """``value`` as it was written in JSON (``true``, ``"5"``, ``5.5``, ``null``), at most ~40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
        if any("\ud800" <= char <= "\udfff" for char in text):  # a lone surrogate cannot be sent as UTF-8
            text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_INPUT_CHARS else text[: SHOWN_INPUT_CHARS - 1] + "…"


def _unknown_field(error: Mapping[str, Any]) -> str:
    loc = error.get("loc") or ("?",)
    return f'unknown field "{loc[-1]}": it is not part of this request; check its spelling (the fields are at /docs)'


def _expected(what: str) -> Callable[[Mapping[str, Any]], str]:
    def message(error: Mapping[str, Any]) -> str:
        return f"expected {what}, not {shown(error.get('input'))}"

    return message


def _one_of(error: Mapping[str, Any]) -> str:
    expected = (error.get("ctx") or {}).get("expected")
    if expected is None:
        return str(error.get("msg", "invalid"))
    return f"expected {expected}, not {shown(error.get('input'))}"


_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "extra_forbidden": _unknown_field,
    "int_type": _expected("a whole number"),
    "int_from_float": _expected("a whole number"),
    "bool_type": _expected("true or false"),
    "string_type": _expected("a string (in double quotes)"),
    "dict_type": _expected("a JSON object"),
    "model_type": _expected("a JSON object"),
    "model_attributes_type": _expected("a JSON object"),
    "list_type": _expected("a JSON array"),
    "enum": _one_of,
    "literal_error": _one_of,
    "missing": lambda _error: "this field is required",
}


def issue_message(error: Mapping[str, Any]) -> str:
    """The sentence for one pydantic error (a dict of ``ValidationError.errors()``)."""
    message = _MESSAGES.get(str(error.get("type", "")))
    return message(error) if message is not None else str(error.get("msg", "invalid"))
