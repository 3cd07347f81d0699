"""ledger_service.core.hashchain reproduces the contract's hash chain exactly."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.core.codes import BizStep, Disposition, encode_location
from ledger_service.core.hashchain import ZERO_HASH, ChainLink, event_hash, item_id, verify_chain
from tests.support.chain import MANUFACTURER, MERCHANT, Deployed

bytes32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None)
@given(
    prev=bytes32,
    item=bytes32,
    seq=st.integers(0, 2**64 - 1),
    step=st.integers(0, 255),
    disp=st.integers(0, 255),
    actor=st.binary(min_size=20, max_size=20),
    location=bytes32,
    document=bytes32,
    btx=bytes32,
    ts=st.integers(0, 2**64 - 1),
)
def test_event_hash_matches_contract_pure_function(
    deployed: Deployed,
    prev: bytes,
    item: bytes,
    seq: int,
    step: int,
    disp: int,
    actor: bytes,
    location: bytes,
    document: bytes,
    btx: bytes,
    ts: int,
) -> None:
    actor_address = deployed.w3.to_checksum_address(actor)
    on_chain = deployed.ledger.functions.computeEventHash(
        prev, item, seq, step, disp, actor_address, location, document, btx, ts
    ).call()
    ours = event_hash(
        prev_hash=prev,
        item_id=item,
        seq=seq,
        biz_step=step,
        disposition=disp,
        actor=actor_address,
        location=location,
        document=document,
        biz_transaction=btx,
        timestamp=ts,
    )
    assert ours == bytes(on_chain)


def links_of(deployed: Deployed, itemid: bytes) -> list[ChainLink]:
    logs = deployed.ledger.events.ItemEventRecorded.get_logs(
        from_block=deployed.deploy_block, argument_filters={"itemId": itemid}
    )
    return [
        ChainLink(
            item_id=bytes(log["args"]["itemId"]),
            seq=log["args"]["seq"],
            biz_step=log["args"]["bizStep"],
            disposition=log["args"]["disposition"],
            actor=log["args"]["actor"],
            location=bytes(log["args"]["location"]),
            document=bytes(log["args"]["document"]),
            biz_transaction=bytes(log["args"]["bizTransaction"]),
            timestamp=log["args"]["timestamp"],
            prev_hash=bytes(log["args"]["prevHash"]),
            event_hash=bytes(log["args"]["eventHash"]),
        )
        for log in logs
    ]


def test_replayed_events_reproduce_the_stored_head_and_tampering_is_named(deployed: Deployed) -> None:
    w3, ledger, accounts = deployed.w3, deployed.ledger, deployed.accounts
    uri = "urn:epc:id:sgtin:0614141.107346.hashchain"
    loc = encode_location("0614141.00777.0")
    # Each receipt is awaited: anvil mines after answering the send, and reading the logs before the last
    # block was mined once missed the last event.
    sent = [
        ledger.functions.registerItem(uri, 614141107346, accounts[MERCHANT], ZERO_HASH, loc).transact(
            {"from": accounts[MANUFACTURER]}
        )
    ]
    itemid = item_id(uri)
    for step, disp in [(BizStep.PACKING, Disposition.IN_PROGRESS), (BizStep.SHIPPING, Disposition.IN_TRANSIT)]:
        sent.append(
            ledger.functions.recordEvent((itemid, step, disp, loc, b"\x01" * 32, ZERO_HASH)).transact(
                {"from": accounts[MERCHANT]}
            )
        )
    assert all(w3.eth.wait_for_transaction_receipt(tx)["status"] == 1 for tx in sent)
    links = links_of(deployed, itemid)
    head, count, problems = verify_chain(links)
    stored_head, stored_count, merchant, destroyed = ledger.functions.itemOf(itemid).call()
    assert (head, count, problems) == (bytes(stored_head), stored_count, [])
    assert merchant == accounts[MERCHANT] and not destroyed
    assert w3.eth.block_number >= deployed.deploy_block

    altered = [links[0], replace(links[1], disposition=Disposition.DAMAGED), links[2]]
    assert [(p.seq, "altered" in p.reason) for p in verify_chain(altered)[2]] == [(1, True)]
    _, _, missing = verify_chain([links[0], links[2]])
    assert {p.seq for p in missing} == {2}
    assert "missing or reordered" in missing[0].reason
    assert len(missing) == 1  # one break, one problem (its prevHash cannot link either)
    _, _, reordered = verify_chain([links[0], links[2], links[1]])
    assert {p.seq for p in reordered} == {2, 1}
