"""API keys and return tokens: shown once, stored hashed, verified, revoked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_service.access import (
    Role,
    create_api_key,
    issue_return_token,
    list_api_keys,
    revoke_api_key,
    revoke_return_tokens,
    verify_api_key,
    verify_return_token,
)
from ledger_service.errors import AuthenticationError, InvalidRequestError, NotFoundError
from ledger_service.store import Store

MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ITEM = "0x" + "12" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'access.sqlite3'}") as opened:
        yield opened


def test_a_key_is_stored_only_as_its_hash(store: Store) -> None:
    created = create_api_key(store=store, role="merchant", name=" desk ", actor_address=MERCHANT, now=1_000)
    plaintext = created.plaintext
    assert plaintext.startswith("rlk_") and len(plaintext) == 4 + 43
    assert created.key.name == "desk" and created.key.key_prefix == plaintext[:10]
    dump = repr(store.dump())
    assert plaintext not in dump and hashlib.sha256(plaintext.encode()).hexdigest() in dump
    actor = verify_api_key(store=store, presented=plaintext)
    assert (actor.role, actor.address, actor.account, actor.principal) == (
        Role.MERCHANT,
        MERCHANT.lower(),
        MERCHANT,
        f"key:{created.key.id}",
    )


def test_keys_are_unique_and_listed(store: Store) -> None:
    made = {create_api_key(store=store, role=Role.AUDITOR, name=f"a{n}").plaintext for n in range(20)}
    assert len(made) == 20
    listed = list_api_keys(store=store)
    assert [k.name for k in listed] == [f"a{n}" for n in range(20)] and not any(k.revoked for k in listed)


def test_revocation_is_immediate_and_kept(store: Store) -> None:
    created = create_api_key(store=store, role=Role.CARRIER, name="parcel", actor_address=MERCHANT)
    revoked = revoke_api_key(store=store, key_id=created.key.id, now=1_800_000_000)
    assert revoked.revoked and revoked.revoked_at == 1_800_000_000
    with pytest.raises(AuthenticationError, match=r"revoked on 2027-01-15 08:00 UTC"):
        verify_api_key(store=store, presented=created.plaintext)
    assert revoke_api_key(store=store, key_id=created.key.id).revoked_at == 1_800_000_000
    with pytest.raises(NotFoundError, match="there is no API key 99"):
        revoke_api_key(store=store, key_id=99)


@pytest.mark.parametrize(
    ("role", "address", "message"),
    [
        ("owner", None, "unknown role 'owner'"),
        (Role.ARBITER, None, "arbiter keys act on-chain"),
        (Role.INSPECTOR, "0xnope", "is not an account address"),
        (Role.ADMIN, MERCHANT, "admin keys act for no on-chain account"),
    ],
)
def test_keys_that_could_not_work_are_refused(store: Store, role: str, address: str | None, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        create_api_key(store=store, role=role, name="x", actor_address=address)
    with pytest.raises(InvalidRequestError, match="a key needs a name"):
        create_api_key(store=store, role=Role.AUDITOR, name="x" * 201)


def test_an_auditor_has_no_account(store: Store) -> None:
    actor = verify_api_key(store=store, presented=create_api_key(store=store, role="auditor", name="firm").plaintext)
    assert actor.address is None
    with pytest.raises(Exception, match="acts for no on-chain account"):
        _ = actor.account


def test_return_tokens_name_their_item_and_consumer(store: Store) -> None:
    token = issue_return_token(store=store, item_id=ITEM.upper().replace("0X", "0x"), consumer=MERCHANT, sale_seq=1)
    consumer = verify_return_token(store=store, presented=token)
    assert (consumer.item_id, consumer.address, consumer.account) == (ITEM, MERCHANT.lower(), MERCHANT)
    assert token not in repr(store.dump())
    with pytest.raises(AuthenticationError, match="return token is malformed") as caught:
        verify_return_token(store=store, presented="rlk_" + token[4:])
    assert caught.value.scheme == "ReturnToken"
    assert revoke_return_tokens(store=store, item_id=ITEM) == 1
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_return_token(store=store, presented=token)
    with pytest.raises(InvalidRequestError, match="is not an item id"):
        issue_return_token(store=store, item_id="0x12", consumer=MERCHANT, sale_seq=1)
