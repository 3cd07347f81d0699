"""The browser the pages' tests drive: Debian's chromium through Playwright (never a browser download), with
axe-core (from npm) checked on every page and screenshots written to ``reports/screenshots/``.

Without ``/usr/bin/chromium`` the browser tests skip, except under ``CI=true``, where they fail:
``scripts/bootstrap.sh`` installs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "reports" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
BLOCKING = frozenset({"serious", "critical"})


def chromium() -> Iterator[Browser]:
    """A started chromium (skips the test, or fails it under CI=true, when it is not installed)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap.sh (npm ci)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now (WCAG 2.1 A and AA rules)."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {
              runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
              resultTypes: ['violations'],
           })).violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                     targets: v.nodes.map(n => n.target.join(' '))}))"""
    )
    return [v for v in found if v["impact"] in BLOCKING]


def check_page(page: Page, name: str) -> None:
    """Asserts that the page has no serious or critical axe violation and nothing wider than the window (no
    sideways scrolling at 360 px), and saves its screenshot as ``reports/screenshots/<name>.png``."""
    violations = accessibility_violations(page)
    assert not violations, f"{name}: {json.dumps(violations, ensure_ascii=False, indent=1)}"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: the page is {overflow} px wider than the window"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def first_contentful_paint_ms(page: Page) -> float | None:
    """The page's first contentful paint (ms after navigation started), as the browser measured it (None if it
    recorded none within a few seconds)."""
    try:
        page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=5000)
    except PlaywrightTimeoutError:
        return None
    value = page.evaluate(
        "() => { const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null }"
    )
    return None if value is None else float(value)
