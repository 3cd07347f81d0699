"""The API's tables (revision 0002) and their queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from ledger_service.store import Store, api_queries
from ledger_service.store._db import HEAD_REVISION, MIGRATIONS
from ledger_service.store.api_queries import ItemBusyError, ReturnRequestRow
from ledger_service.store.api_schema import API_TABLES
from ledger_service.store.schema import metadata

T = TypeVar("T")
ITEM = "0x" + "AB" * 32
CONSUMER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def together(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Runs ``work(i)`` in ``count`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(count)

    def one(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def request_row(request_id: str, **changes: object) -> ReturnRequestRow:
    values: dict[str, object] = {
        "id": request_id,
        "item_id": ITEM,
        "consumer": CONSUMER,
        "merchant": MERCHANT,
        "reason_code": "damaged",
        "comment": None,
        "outcome": "manual_review",
        "reasons": [{"code": "manual", "message": "the merchant reviews this one"}],
        "return_id": None,
        "tx_hash": None,
        "created_at": 1_000,
        "decided_at": None,
        "decided_by": None,
        "active_item": ITEM,
    }
    values.update(changes)
    return ReturnRequestRow(**values)  # type: ignore[arg-type]


def test_the_migrations_create_exactly_the_api_tables(store_url: str) -> None:
    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert list(compare_metadata(context, metadata)) == []
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        left = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # 0001 made every indexer table but node_faults (0006)
    assert left == {*metadata.tables, "alembic_version"} - {t.name for t in API_TABLES} - {"node_faults"}
    Store.open(store_url).close()  # and up again


def test_exactly_one_concurrent_claim_of_an_idempotency_key_wins(store: Store) -> None:
    results = together(
        12,
        lambda _: api_queries.claim_idempotency_key(
            store, actor="key:1", key="k", method="POST", path="/v1/x", request_hash="h" * 64, now=100, lease_s=300
        ),
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, api_queries.IdempotencyRow) for r in results if r is not None)
    api_queries.complete_idempotency_key(store, actor="key:1", key="k", status=201, response_body='{"a":1}', now=101)
    row = api_queries.get_idempotency_key(store, actor="key:1", key="k")
    assert row is not None and (row.status, row.response_body, row.completed_at) == (201, '{"a":1}', 101)
    assert api_queries.purge_idempotency_keys(store, created_before=100) == 0
    assert api_queries.purge_idempotency_keys(store, created_before=101) == 1


def test_one_request_holds_an_item_at_a_time(store: Store) -> None:
    results = together(8, lambda i: api_queries.insert_return_request(store, request_row(f"rr_{i}")))
    busy = [r for r in results if isinstance(r, ItemBusyError)]
    assert results.count(None) == 1 and len(busy) == 7
    holder = api_queries.active_request_for_item(store, ITEM)
    assert holder is not None and busy[0].holder == holder.id and busy[0].item_id == ITEM.lower()
    assert (
        api_queries.record_decision(
            store,
            request_id=holder.id,
            outcome="reject",
            decided_at=2_000,
            decided_by=MERCHANT,
            expected_outcome="approve",
        )
        is False
    )  # compare-and-set: the stored outcome is manual_review
    assert api_queries.record_decision(
        store,
        request_id=holder.id,
        outcome="approve",
        decided_at=2_000,
        decided_by=MERCHANT,
        return_id="0x" + "CD" * 32,
        tx_hash="0x" + "EF" * 32,
        expected_outcome="manual_review",
    )
    decided = api_queries.return_request_by_id(store, holder.id)
    assert decided is not None
    assert (decided.outcome, decided.return_id, decided.active_item, decided.decided_by) == (
        "approve",
        "0x" + "cd" * 32,
        None,
        MERCHANT.lower(),
    )
    api_queries.insert_return_request(store, request_row("rr_next"))  # the slot is free again
    api_queries.release_item(store, request_id="rr_next")
    assert api_queries.active_request_for_item(store, ITEM) is None


def test_requests_are_listed_newest_first_with_filters_and_a_total(store: Store) -> None:
    for n in range(5):
        api_queries.insert_return_request(
            store,
            request_row(
                f"rr_{n}",
                item_id="0x" + f"{n:02x}" * 32,
                active_item=None,
                created_at=1_000 + n,
                outcome="reject" if n % 2 else "approve",
                reason_code="damaged" if n < 3 else "wrong_size",
            ),
        )
    rows, total = api_queries.list_return_requests(store, merchant=MERCHANT, limit=2, offset=1)
    assert total == 5 and [r.id for r in rows] == ["rr_3", "rr_2"]
    rows, total = api_queries.list_return_requests(store, outcomes=["approve"], reason_code="damaged")
    assert total == 2 and [r.id for r in rows] == ["rr_2", "rr_0"]
    _, total = api_queries.list_return_requests(store, consumer=CONSUMER.lower(), created_from=1_001, created_to=1_003)
    assert total == 2
    assert rows[0].reasons == [{"code": "manual", "message": "the merchant reviews this one"}]


def test_keys_tokens_policies_and_categories(store: Store) -> None:
    key = api_queries.insert_api_key(
        store,
        name="desk",
        role="merchant",
        actor_address=MERCHANT,
        key_hash="a" * 64,
        key_prefix="rlk_abcdef",
        created_at=5,
    )
    assert key.id >= 1 and key.actor_address == MERCHANT.lower()
    assert api_queries.api_key_by_hash(store, "a" * 64) == key
    first = api_queries.revoke_api_key(store, key_id=key.id, revoked_at=10)
    later = api_queries.revoke_api_key(store, key_id=key.id, revoked_at=20)
    assert first is not None and later is not None and first.revoked_at == later.revoked_at == 10
    assert api_queries.revoke_api_key(store, key_id=999, revoked_at=20) is None

    api_queries.insert_return_token(
        store, token_hash="b" * 64, item_id=ITEM, consumer=CONSUMER, sale_seq=1, created_at=5, expires_at=50
    )
    assert api_queries.revoke_return_tokens(store, item_id=ITEM, consumer=MERCHANT, revoked_at=6) == 0
    assert api_queries.revoke_return_tokens(store, item_id=ITEM, revoked_at=6) == 1
    token = api_queries.return_token_by_hash(store, "b" * 64)
    assert token is not None and (token.item_id, token.consumer, token.revoked_at) == (
        ITEM.lower(),
        CONSUMER.lower(),
        6,
    )

    document = {"categories": {"final_sale": False}, "reasons": ["damaged"], "manual_review": {"above": "100"}}
    digest = "0x" + "11" * 32
    assert api_queries.put_policy_terms(store, merchant=MERCHANT, digest=digest, document=document, created_at=1)
    assert not api_queries.put_policy_terms(store, merchant=MERCHANT, digest=digest, document={}, created_at=2)
    stored = api_queries.policy_terms_of(store, merchant=MERCHANT.lower(), digest=digest.upper().replace("0X", "0x"))
    assert stored is not None and stored.document == document
    assert [t.digest for t in api_queries.list_policy_terms(store, merchant=MERCHANT)] == [digest]

    api_queries.set_item_category(store, item_id=ITEM, category="shoes", set_by=MERCHANT, set_at=1)
    api_queries.set_item_category(store, item_id=ITEM, category="final_sale", set_by=MERCHANT, set_at=2)
    category = api_queries.item_category(store, ITEM)
    assert category is not None and (category.category, category.set_at) == ("final_sale", 2)
    assert api_queries.item_categories_of(store, [ITEM, "0x" + "00" * 32]) == {ITEM.lower(): "final_sale"}
    assert api_queries.item_categories_of(store, []) == {}
