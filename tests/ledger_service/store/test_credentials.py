"""The API's records (revision 0002): keys, tokens and revocations, with the policy terms and item
categories the API writes beside them, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store, credentials, items, policies
from tests.support import store_reads

ITEM = "0x" + "AB" * 32
CONSUMER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_keys_tokens_policies_and_categories(store: Store) -> None:
    key = credentials.insert_api_key(
        store,
        name="desk",
        role="merchant",
        actor_address=MERCHANT,
        key_hash="a" * 64,
        key_prefix="rlk_abcdef",
        created_at=5,
    )
    assert key.id >= 1 and key.actor_address == MERCHANT.lower()
    assert credentials.api_key_by_hash(store, "a" * 64) == key
    first = credentials.revoke_api_key(store, key_id=key.id, revoked_at=10)
    later = credentials.revoke_api_key(store, key_id=key.id, revoked_at=20)
    assert first is not None and later is not None and first.revoked_at == later.revoked_at == 10
    assert credentials.revoke_api_key(store, key_id=999, revoked_at=20) is None

    credentials.insert_return_token(
        store, token_hash="b" * 64, item_id=ITEM, consumer=CONSUMER, sale_seq=1, created_at=5, expires_at=50
    )
    assert credentials.revoke_return_tokens(store, item_id=ITEM, consumer=MERCHANT, revoked_at=6) == 0
    assert credentials.revoke_return_tokens(store, item_id=ITEM, revoked_at=6) == 1
    token = credentials.return_token_by_hash(store, "b" * 64)
    assert token is not None and (token.item_id, token.consumer, token.revoked_at) == (
        ITEM.lower(),
        CONSUMER.lower(),
        6,
    )

    document = {"categories": {"final_sale": False}, "reasons": ["damaged"], "manual_review": {"above": "100"}}
    digest = "0x" + "11" * 32
    assert policies.put_policy_terms(store, merchant=MERCHANT, digest=digest, document=document, created_at=1)
    assert not policies.put_policy_terms(store, merchant=MERCHANT, digest=digest, document={}, created_at=2)
    stored = policies.policy_terms_of(store, merchant=MERCHANT.lower(), digest=digest.upper().replace("0X", "0x"))
    assert stored is not None and stored.document == document
    assert [t.digest for t in store_reads.list_policy_terms(store, merchant=MERCHANT)] == [digest]

    items.set_item_category(store, item_id=ITEM, category="shoes", set_by=MERCHANT, set_at=1)
    items.set_item_category(store, item_id=ITEM, category="final_sale", set_by=MERCHANT, set_at=2)
    category = store_reads.item_category(store, ITEM)
    assert category is not None and (category.category, category.set_at) == ("final_sale", 2)
    assert store_reads.item_categories_of(store, [ITEM, "0x" + "00" * 32]) == {ITEM.lower(): "final_sale"}
    assert store_reads.item_categories_of(store, []) == {}
