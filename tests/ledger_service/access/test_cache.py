"""Verified credentials are cached briefly: a revocation here applies at once, one made elsewhere (another
process writing the database) at the next RevocationWatch check (without one, within the cache's TTL); a token
is never cached past its expiry, and a new sale's token ends the earlier sale's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_service.access import (
    Role,
    _cache,
    cached_api_key,
    cached_return_token,
    create_api_key,
    issue_return_token,
    revoke_api_key,
    revoke_return_tokens,
    verify_api_key,
    verify_return_token,
)
from ledger_service.access._secrets import hash_secret
from ledger_service.errors import AuthenticationError
from ledger_service.store import Store, credentials

CONSUMER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OTHER_CONSUMER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
ITEM, OTHER_ITEM = "0x" + "12" * 32, "0x" + "34" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    _cache.clear()
    with Store.open(f"sqlite:///{tmp_path / 'access.sqlite3'}") as opened:
        yield opened
    _cache.clear()


def test_a_verified_key_is_answered_from_the_cache(store: Store) -> None:
    created = create_api_key(store=store, role=Role.AUDITOR, name="reader")
    assert cached_api_key(created.plaintext) is None  # never verified yet
    actor = verify_api_key(store=store, presented=created.plaintext)
    assert cached_api_key(created.plaintext) == actor
    assert cached_return_token("rrt_" + created.plaintext[4:]) is None  # another secret
    with pytest.raises(AuthenticationError, match="malformed"):
        cached_api_key("rlk_short")


def test_revoking_here_applies_at_once(store: Store) -> None:
    kept = create_api_key(store=store, role=Role.AUDITOR, name="kept")
    gone = create_api_key(store=store, role=Role.AUDITOR, name="gone")
    verify_api_key(store=store, presented=kept.plaintext)
    verify_api_key(store=store, presented=gone.plaintext)
    revoke_api_key(store=store, key_id=gone.key.id)
    assert cached_api_key(gone.plaintext) is None
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_api_key(store=store, presented=gone.plaintext)
    assert cached_api_key(kept.plaintext) is not None  # another key's entry stays


def test_a_revocation_by_another_process_applies_within_the_ttl(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cache, "VERIFIED_TTL_S", 0.2)
    created = create_api_key(store=store, role=Role.AUDITOR, name="reader")
    verify_api_key(store=store, presented=created.plaintext)
    credentials.revoke_api_key(store, key_id=created.key.id, revoked_at=1)  # as ledger-admin would, elsewhere
    verify_api_key(store=store, presented=created.plaintext)  # still believed: the revocation delay
    time.sleep(0.25)
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_api_key(store=store, presented=created.plaintext)


def test_invalid_credentials_are_not_cached(store: Store) -> None:
    unknown = "rlk_" + "A" * 43
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="not valid"):
            verify_api_key(store=store, presented=unknown)
    assert cached_api_key(unknown) is None


def test_return_tokens_are_cached_and_forgotten_on_revocation(store: Store) -> None:
    token = issue_return_token(store=store, item_id=ITEM, consumer=CONSUMER, sale_seq=1)
    other = issue_return_token(store=store, item_id=OTHER_ITEM, consumer=CONSUMER, sale_seq=1)
    consumer = verify_return_token(store=store, presented=token)
    verify_return_token(store=store, presented=other)
    assert cached_return_token(token) == consumer and cached_api_key("rlk_" + token[4:]) is None
    assert revoke_return_tokens(store=store, item_id=ITEM.upper().replace("0X", "0x")) == 1
    assert cached_return_token(token) is None and cached_return_token(other) is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_return_token(store=store, presented=token)


def test_the_cache_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cache, "VERIFIED_MAX", 3)
    keys = [create_api_key(store=store, role=Role.AUDITOR, name=f"k{n}").plaintext for n in range(5)]
    for key in keys:
        verify_api_key(store=store, presented=key)
    assert [cached_api_key(key) is not None for key in keys] == [False, False, True, True, True]


def test_a_revocation_seen_by_the_watch_empties_the_cache(store: Store) -> None:
    from ledger_service.access import RevocationWatch

    watch = RevocationWatch(store)
    assert not watch.check()  # nothing revoked since it started
    created = create_api_key(store=store, role=Role.AUDITOR, name="revoked by the CLI")
    verify_api_key(store=store, presented=created.plaintext)
    # another process revokes: the database only
    credentials.revoke_api_key(store, key_id=created.key.id, revoked_at=int(time.time()))
    assert cached_api_key(created.plaintext) is not None
    assert watch.check() and cached_api_key(created.plaintext) is None
    assert not watch.check()
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_api_key(store=store, presented=created.plaintext)


def test_a_credential_read_before_the_cache_was_emptied_is_not_cached(store: Store) -> None:
    created = create_api_key(store=store, role=Role.AUDITOR, name="raced")
    actor = verify_api_key(store=store, presented=created.plaintext)
    _cache.clear()
    since = _cache.generation()
    _cache.clear()  # a revocation was seen while the database was being read
    _cache.remember("f" * 64, actor, since=since)
    assert _cache.lookup("f" * 64) is None
    _cache.remember("f" * 64, actor, since=_cache.generation())
    assert _cache.lookup("f" * 64) == actor


def test_a_token_is_not_cached_past_its_expiry(store: Store) -> None:
    # Checked against the verification's own clock and the cache's deadline, not the wall clock
    # passing (a loaded machine may take seconds between two lines).
    left_s = 5
    assert left_s < _cache.VERIFIED_TTL_S
    now = int(time.time())
    token = issue_return_token(
        store=store, item_id=ITEM, consumer=CONSUMER, sale_seq=1, ttl_s=3600, now=now - 3600 + left_s
    )
    verify_return_token(store=store, presented=token, now=now)
    assert cached_return_token(token) is not None
    deadline, _ = _cache._entries[hash_secret(token)]
    assert deadline - time.monotonic() <= left_s  # its remaining life, not the cache's full TTL
    expired = issue_return_token(store=store, item_id=OTHER_ITEM, consumer=CONSUMER, sale_seq=1, ttl_s=60, now=now - 60)
    with pytest.raises(AuthenticationError, match="expired on"):
        verify_return_token(store=store, presented=expired, now=now)
    assert cached_return_token(expired) is None


def test_a_new_sales_token_revokes_the_earlier_sales_tokens(store: Store) -> None:
    first = issue_return_token(store=store, item_id=ITEM, consumer=CONSUMER, sale_seq=1)
    verify_return_token(store=store, presented=first)
    second = issue_return_token(store=store, item_id=ITEM, consumer=OTHER_CONSUMER, sale_seq=2)
    assert cached_return_token(first) is None
    with pytest.raises(AuthenticationError, match="sold again"):
        verify_return_token(store=store, presented=first)
    assert verify_return_token(store=store, presented=second).sale_seq == 2
