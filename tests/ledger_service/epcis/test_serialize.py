"""A chain event's eventID: a UUID (version 8) that names its position on the chain and its eventHash."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.epcis.serialize import event_uuid, parse_event_uuid

HASHES = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())


@given(block=st.integers(0, (1 << 48) - 1), log_index=st.integers(0, (1 << 20) - 1), event_hash=HASHES)
def test_the_id_is_a_version_8_uuid_that_gives_back_its_position_and_matches_only_its_hash(
    block: int, log_index: int, event_hash: str
) -> None:
    event_id = event_uuid(block, log_index, event_hash)
    parsed_uuid = uuid.UUID(event_id.removeprefix("urn:uuid:"))
    assert event_id.startswith("urn:uuid:") and parsed_uuid.version == 8 and parsed_uuid.variant == uuid.RFC_4122
    parsed = parse_event_uuid(event_id)
    assert parsed is not None and (parsed.block_number, parsed.log_index) == (block, log_index)
    assert parsed.matches(event_hash)
    flipped = "0x" + format(int(event_hash, 16) ^ (1 << 255), "064x")  # another hash at the same place
    assert not parsed.matches(flipped)
    assert parse_event_uuid("urn:uuid:" + str(parsed_uuid).upper()) == parsed


@pytest.mark.parametrize(
    "other",
    ["urn:uuid:4f3a8c36-3c35-4d2b-bb5b-0a4b7c7c2a11", "urn:uuid:nonsense", "ni:///sha-256;00?ver=CBV2.0", ""],
)
def test_other_ids_are_not_chain_event_ids(other: str) -> None:
    assert parse_event_uuid(other) is None


def test_a_position_beyond_the_layout_has_no_id() -> None:
    with pytest.raises(ValueError, match="no chain event ID"):
        event_uuid(1 << 48, 0, "0x" + "00" * 32)
