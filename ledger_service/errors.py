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


class RequestError(FatalError):
    """The caller must change the request: the service is fine (the API answers with a 4xx)."""


class AuthenticationError(RequestError):
    """No credentials, or credentials that are unknown, malformed or revoked (HTTP 401).

    ``scheme`` names the credentials the caller should send (``Bearer`` or ``ReturnToken``).
    """

    def __init__(self, message: str, *, scheme: str = "Bearer") -> None:
        super().__init__(message)
        self.scheme = scheme


class PermissionDeniedError(RequestError):
    """Valid credentials that do not allow this action (HTTP 403)."""


class NotFoundError(RequestError):
    """The resource does not exist, or is not the caller's to see (HTTP 404)."""


class ConflictError(RequestError):
    """The request conflicts with the resource's current state (HTTP 409)."""


class InvalidRequestError(RequestError):
    """The request is well-formed but its content cannot be accepted (HTTP 422)."""


class IndexBehindError(RetryableError):
    """The index did not reach a block in time (a ``?wait=true`` write: HTTP 504)."""

    def __init__(self, message: str, *, block_number: int, indexed: int | None) -> None:
        super().__init__(message)
        self.block_number = block_number
        self.indexed = indexed


class PayloadTooLargeError(RequestError):
    """The uploaded content is larger than the configured limit (HTTP 413)."""


class UnsupportedMediaTypeError(RequestError):
    """The uploaded content's type is not one the service accepts (HTTP 415)."""


class RateLimitedError(RequestError):
    """Too many requests from this client in the current window (HTTP 429, ``Retry-After`` seconds)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DocumentIntegrityError(FatalError):
    """A stored document's bytes do not match its CID (corrupt or swapped blob): never served (HTTP 502)."""
