"""Reading the pages' HTML in tests: the hidden fields of a form, the text a person sees."""

from __future__ import annotations

import html
import re

_FIELD = re.compile(r'<input type="hidden" name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)">')
_TAG = re.compile(r"<[^>]+>")


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action``."""
    start = page.index(f'action="{action}"')
    form = page[start : page.index("</form>", start)]
    return {m["name"]: html.unescape(m["value"]) for m in _FIELD.finditer(form)}


def text(page: str) -> str:
    """The page's text without tags, whitespace collapsed."""
    return " ".join(html.unescape(_TAG.sub(" ", page)).split())
