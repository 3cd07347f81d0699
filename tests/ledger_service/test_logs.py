"""ledger_service.logs: what redaction removes and keeps, JSON lines that stay JSON, private files, bounded
tracebacks. (tests/api/test_logging.py checks the API's logs end to end.)"""

from __future__ import annotations

import io
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ledger_service.logs import MAX_TRACEBACK_CHARS, TRACEBACKS_PER_WINDOW, configure_logging, redact
from ledger_service.settings import ANVIL_ACCOUNTS, Settings

API_KEY = "rlk_" + "Ab3_-" * 8 + "xyz"
TOKEN = "rrt_" + "Zq9-_" * 8 + "abc"
SIGNER = ANVIL_ACCOUNTS[2][1]
TX_HASH = "0x" + "3e" * 32


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for added in [h for h in root.handlers if h not in handlers]:
        added.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {API_KEY}", API_KEY),
        (f"{{'authorization': 'ReturnToken {TOKEN}'}}", TOKEN),
        (f"key {API_KEY[:20]} is malformed", API_KEY[:20]),  # a truncated key is still most of a key
        ("Bearer%20not-even-a-key", "not-even-a-key"),
        ("mail to jane.doe+returns@shop.example.co.uk please", "jane.doe+returns@shop.example.co.uk"),
        ("password=hunter2 next", "hunter2"),
        ('{"api_key": "s3cr3t-value"}', "s3cr3t-value"),
    ],
)
def test_redact_removes_credentials_and_addresses(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "REDACTED" in redact(text)


def test_configured_signing_keys_are_redacted_in_any_form() -> None:
    configure_logging(_settings(), stream=io.StringIO())
    for form in (SIGNER, SIGNER.upper().replace("0X", "0x"), SIGNER.removeprefix("0x")):
        assert SIGNER.removeprefix("0x") not in redact(f"signing with {form}").lower()


def test_redact_keeps_what_operators_need() -> None:
    text = f"tx {TX_HASH} for item {TX_HASH} failed; send `Authorization: Bearer <API key>`"
    assert redact(text) == text


def _json_lines(settings: Settings) -> tuple[io.StringIO, structlog.typing.FilteringBoundLogger]:
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    return stream, structlog.get_logger("test")


def test_json_lines_stay_json_after_redaction() -> None:
    stream, log = _json_lines(_settings(log_json=True))
    try:
        raise ValueError(f'header "Authorization": "Bearer {API_KEY}" from a@b.example')
    except ValueError:
        log.exception("failed", authorization=f"Bearer {API_KEY}", email="a@b.example", token=TX_HASH)
    logging.getLogger("uvicorn.error").error("stdlib with %s", f"ReturnToken {TOKEN}")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["authorization"] == "[REDACTED]" and lines[0]["token"] == TX_HASH
    assert API_KEY not in lines[0]["exception"] and "a@b.example" not in stream.getvalue()
    assert lines[1]["event"] == "stdlib with ReturnToken [REDACTED]" and lines[1]["logger"] == "uvicorn.error"


def test_tracebacks_are_bounded_and_rate_limited() -> None:
    stream, log = _json_lines(_settings(log_json=True))

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("x" * (3 * MAX_TRACEBACK_CHARS))
        deep(n - 1)

    for _ in range(TRACEBACKS_PER_WINDOW + 3):
        try:
            deep(50)
        except RuntimeError:
            log.exception("boom")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    full = [line for line in lines if line["exception"].startswith("Traceback")]
    assert len(full) == TRACEBACKS_PER_WINDOW
    assert all(len(line["exception"]) <= MAX_TRACEBACK_CHARS + 100 for line in full)
    assert "characters of traceback left out" in full[0]["exception"]
    last = lines[-1]["exception"]
    assert last.startswith("RuntimeError: xxx") and f"seen {TRACEBACKS_PER_WINDOW + 3} times" in last
    assert len(last) < 400


def test_a_log_file_is_created_private_and_made_private(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "api.log"
    configure_logging(_settings(log_file=fresh))
    structlog.get_logger("test").warning("hello")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert "hello" in fresh.read_text()
    old = tmp_path / "old.log"
    old.write_text("before\n")
    old.chmod(0o644)
    configure_logging(_settings(log_file=old))
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
