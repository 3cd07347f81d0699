"""Logging for every entry point (``ledger-api``, ``ledger-indexer``, ``ledger-admin``): one setup that cannot leak.

:func:`configure_logging` routes structlog and the standard library (uvicorn's loggers, SQLAlchemy, web3) through
one handler and one formatter, so every line, whoever writes it, keeps these invariants:

- **No secret in a line.** The rendered text (the event, its fields and the traceback) passes :func:`redact`
  last: API keys (``rlk_...``), return tokens (``rrt_...``), the credential of any ``Bearer`` /
  ``ReturnToken`` / ``Basic`` scheme, e-mail addresses, the values of fields named like secrets
  (``authorization``, ``password``, ``private_key``, ...) and the signing keys the settings hold
  (``LEDGER_SIGNER_KEYS``, ``LEDGER_RELAYER_KEY``, with or without ``0x``) become ``[REDACTED ...]``. A
  64-hex value is not redacted by its shape alone: item ids, transaction hashes and digests look the same and
  are what an operator needs.
- **Plain tracebacks, bounded.** A traceback is the standard library's text, never local variables (structlog's
  default console renderer shows them when ``rich`` is installed: a request's ``Authorization`` header, many
  times over, megabytes per error), and at most :data:`MAX_TRACEBACK_CHARS` characters.
- **Rate-limited.** The same traceback (exception type and the place it was raised) is written in full at
  most :data:`TRACEBACKS_PER_WINDOW` times per :data:`TRACEBACK_WINDOW_S` seconds; past that the line says
  which exception and how many times it repeated in the window, without the traceback.
- **Private files.** A log file (``LEDGER_LOG_FILE``) is created with mode 0600 (an existing one is
  set to 0600).

Lines are ``key=value`` text, or one JSON object each with ``LEDGER_LOG_JSON=true``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from ledger_service.settings import Settings

MAX_TRACEBACK_CHARS = 20_000
"""A longer traceback keeps its start and its end (the innermost frames and the exception)."""
TRACEBACKS_PER_WINDOW = 5
TRACEBACK_WINDOW_S = 60.0
REDACTED = "[REDACTED]"

_SECRET_FIELD = re.compile(
    r"(authorization|password|passwd|secret|private_?key|signer_?keys?|relayer_?key|api_?key|return_?token|cookie)",
    re.IGNORECASE,
)


def _quoted(value: str) -> str:
    quote = value[0] if value[:1] in ("'", '"') else ""
    return quote + REDACTED + quote


_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # (what the lowercased text must contain for the pattern to be worth running, the pattern, its replacement)
    # a credential after its scheme, whatever it looks like (a malformed key is still someone's key)
    (
        ("bearer", "returntoken", "basic"),
        re.compile(r"\b(Bearer|ReturnToken|Basic)(\s+|%20|\+)[^\s'\"\\,;)\]}<`]+", re.IGNORECASE),
        r"\1 " + REDACTED,
    ),
    (("rlk_",), re.compile(r"rlk_[A-Za-z0-9_-]*"), "rlk_" + REDACTED),
    (("rrt_",), re.compile(r"rrt_[A-Za-z0-9_-]*"), "rrt_" + REDACTED),
    (("@",), re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[REDACTED email]"),
    # a secret-named field's value in key=value text or a repr: 'authorization': 'x', password="x" (quotes kept)
    (
        ("authorization", "password", "passwd", "secret", "key", "cookie"),
        re.compile(
            r"""((?:authorization|password|passwd|secret|private_?key|api_?key|cookie)['"]?\s*[:=]\s*)"""
            r"""(?!['"]?(?:\[REDACTED|(?:Bearer|ReturnToken|Basic)\s+[<\[]))(?:'[^'\\]*'|"[^"\\]*"|[^\s'"\\,;)\]}]+)""",
            re.IGNORECASE,
        ),
        lambda found: found[1] + _quoted(found[0][len(found[1]) :]),
    ),
)

_known_secrets: frozenset[str] = frozenset()
_known_marks: tuple[str, ...] = ()
"""A lowercase piece of each known secret: a line without any of them holds none (checked before the regex)."""
_known_pattern: re.Pattern[str] | None = None
_MARK = "_ledger_logging"


def remember_secrets(secrets: Iterable[str]) -> None:
    """Adds exact strings (e.g. the configured signing keys) that :func:`redact` removes wherever they appear;
    a hex key matches with or without ``0x`` and in any case."""
    global _known_secrets, _known_marks, _known_pattern
    forms = set(_known_secrets)
    for secret in secrets:
        if len(secret) < 8:  # too short to be a key, and would redact ordinary words
            continue
        forms.add(secret)
        if re.fullmatch(r"(0x)?[0-9a-fA-F]{32,}", secret):
            forms.add(secret.lower().removeprefix("0x"))
    _known_secrets = frozenset(forms)
    _known_marks = tuple(sorted({form.lower().removeprefix("0x")[:8] for form in forms}))
    alternatives = sorted((re.escape(s) for s in _known_secrets), key=len, reverse=True)
    _known_pattern = re.compile("(?:0x)?(?:" + "|".join(alternatives) + ")", re.IGNORECASE) if alternatives else None


def redact(text: str) -> str:
    """``text`` without credentials, signing keys or e-mail addresses (see the module docstring)."""
    # Each pattern runs only where its trigger occurs: most lines (an access log line) hold none, and the
    # regexes would cost tens of microseconds a line.
    lowered = text.lower()
    if _known_pattern is not None and any(mark in lowered for mark in _known_marks):
        text = _known_pattern.sub("[REDACTED key]", text)
        lowered = text.lower()
    for triggers, pattern, replacement in _PATTERNS:
        if any(trigger in lowered for trigger in triggers):
            text = pattern.sub(replacement, text)
    return text


# ---- processors -----------------------------------------------------------------------------


def _redact_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Drops the value of every field named like a secret (``authorization=...``, ``api_key=...``)."""
    for key in list(event_dict):
        if not key.startswith("_") and _SECRET_FIELD.search(key) and event_dict[key] is not None:
            event_dict[key] = REDACTED
    return event_dict


def _exc_info_of(value: Any) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if value is None or value is False:
        return None
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return type(value[1]), value[1], value[2]
    current = sys.exc_info()[1]  # exc_info=True: the exception being handled
    return None if current is None else (type(current), current, current.__traceback__)


class _TracebackLimiter:
    """Counts tracebacks by signature in a sliding window of :data:`TRACEBACK_WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    def count(self, signature: tuple[str, str, int]) -> int:
        """How many times ``signature`` was seen in its current window, this one included."""
        now = time.monotonic()
        with self._lock:
            started, seen = self._seen.get(signature, (now, 0))
            if now - started >= TRACEBACK_WINDOW_S:
                started, seen = now, 0
            self._seen[signature] = (started, seen + 1)
            if len(self._seen) > 1024:  # many distinct failures: forget the windows that are over
                self._seen = {s: w for s, w in self._seen.items() if now - w[0] < TRACEBACK_WINDOW_S}
            return seen + 1


_limiter = _TracebackLimiter()


def _signature(exc_type: type[BaseException], tb: TracebackType | None) -> tuple[str, str, int]:
    frames = traceback.extract_tb(tb)
    last = frames[-1] if frames else None
    return (exc_type.__qualname__, last.filename if last else "", last.lineno or 0 if last else 0)


def _bounded(text: str) -> str:
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    half = MAX_TRACEBACK_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters of traceback left out ...]\n{text[-half:]}"


def _render_exception(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replaces ``exc_info`` by ``exception``: the plain traceback (no locals), bounded and rate-limited."""
    exc_info = _exc_info_of(event_dict.pop("exc_info", None))
    if exc_info is None:
        return event_dict
    exc_type, exc, tb = exc_info
    seen = _limiter.count(_signature(exc_type, tb))
    if seen > TRACEBACKS_PER_WINDOW:
        message = " ".join(str(exc).split())[:200]
        event_dict["exception"] = (
            f"{exc_type.__qualname__}: {message} (traceback left out: seen {seen} times in "
            f"{TRACEBACK_WINDOW_S:g} s, the first {TRACEBACKS_PER_WINDOW} were logged in full)"
        )
    else:
        event_dict["exception"] = _bounded("".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
    return event_dict


def _redact_rendered(_: WrappedLogger, __: str, rendered: Any) -> str:
    return redact(rendered if isinstance(rendered, str) else str(rendered))


# ---- setup --------------------------------------------------------------------------------------


class PrivateFileHandler(logging.Handler):
    """Appends each record to a file created 0600 (an existing one is set to 0600), in one ``write`` call: the
    workers of one API share the file, and a record written whole with ``O_APPEND`` is never interleaved with
    another process's (a buffered stream would split a long traceback into several writes)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(self._fd, 0o600)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", errors="replace")
            if self._fd is not None:
                os.write(self._fd, line)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        finally:
            self.release()
        super().close()


def formatter(*, json_lines: bool) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: timestamps and levels, plain bounded tracebacks, redaction last."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            # the request id (api/observability.py) on the standard library's lines too (web3, SQLAlchemy)
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_fields,
            _render_exception,
            renderer,
            _redact_rendered,
        ],
    )


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> None:
    """Sets up structlog and the standard library's root logger for this process (again: replaces its own
    handler, leaves others alone). Lines go to ``stream`` (default: ``LEDGER_LOG_FILE`` if set, else stderr)
    at ``LEDGER_LOG_LEVEL``; the configured signing keys are registered for redaction."""
    level = getattr(logging, settings.log_level)
    keys = [key.get_secret_value() for key in settings.signer_keys.values()]
    if settings.relayer_key is not None:
        keys.append(settings.relayer_key.get_secret_value())
    remember_secrets(keys)

    if stream is not None:
        handler: logging.Handler = logging.StreamHandler(stream)
    elif settings.log_file is not None:
        handler = PrivateFileHandler(settings.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(json_lines=settings.log_json))
    setattr(handler, _MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        if isinstance(old, PrivateFileHandler):
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # one INFO line per HTTP call (every JSON-RPC request of web3): noise that fills a disk, never a finding
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    _limiter.reset()
    # uvicorn's own handlers (its default log config) would format tracebacks without this module's rules
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.propagate = True

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
