"""The service's error hierarchy.

Every error raised on purpose derives from :class:`LedgerError` and is either
:class:`RetryableError` (the same call may succeed later: RPC timeout, HTTP 429,
a node briefly behind) or :class:`FatalError` (retrying cannot help: wrong
chain, unrecoverable reorg, corrupt input). Callers decide by class, never by
message text; the API maps these classes to HTTP statuses in one handler.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of all errors the service raises on purpose."""


class RetryableError(LedgerError):
    """A transient failure: the same operation may succeed if retried."""


class FatalError(LedgerError):
    """A failure that retrying cannot fix; stop and tell a person."""


class ConfigurationError(FatalError):
    """Settings, artifacts or a deployment manifest are missing or invalid."""
