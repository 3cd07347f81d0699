"""Access: API keys for actors, return tokens for consumers, and roles.

- Actors send ``Authorization: Bearer rlk_...``; :func:`verify_api_key` gives
  the :class:`Actor` (role, on-chain account, key id). Keys are created and
  revoked with the ``ledger-admin keys`` CLI (:mod:`ledger_service.access.cli`).
- Consumers send ``Authorization: ReturnToken rrt_...``; :func:`verify_return_token`
  gives the :class:`Consumer` (item id, address).

A verified credential is cached in the process for a few seconds (keyed by its hash); a
:class:`RevocationWatch` polled by the API empties the cache when a credential is revoked anywhere
(:mod:`ledger_service.access.revocations`). Only hashes are stored; an answer that must be kept
for a retry is stored :func:`seal`-ed under the caller's credential. A failure to authenticate is an
:class:`~ledger_service.errors.AuthenticationError` whose message says why.
"""

from ledger_service.access._model import WRITING_ROLES, Actor, Consumer, Role
from ledger_service.access._secrets import seal, unseal
from ledger_service.access.keys import (
    ApiKey,
    CreatedKey,
    cached_api_key,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    verify_api_key,
)
from ledger_service.access.revocations import RevocationWatch
from ledger_service.access.tokens import (
    cached_return_token,
    issue_return_token,
    revoke_return_tokens,
    verify_return_token,
)

__all__ = [
    "WRITING_ROLES",
    "Actor",
    "ApiKey",
    "Consumer",
    "CreatedKey",
    "RevocationWatch",
    "Role",
    "cached_api_key",
    "cached_return_token",
    "create_api_key",
    "issue_return_token",
    "list_api_keys",
    "revoke_api_key",
    "revoke_return_tokens",
    "seal",
    "unseal",
    "verify_api_key",
    "verify_return_token",
]
