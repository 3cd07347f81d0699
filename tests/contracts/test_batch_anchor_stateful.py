"""Stateful property test of BatchAnchor (hypothesis, via brownie).

Random anchors by random accounts (roots, counts and digests often on the edges) interleaved with roles
granted and revoked on the ledger. A Python model predicts on its own which anchors revert and why; after
each step the stored record of every (submitter, root) pair touched equals the model's, so: a pair is
anchored at most once, only while its submitter held a scanning role, and never by another account's anchor.
STATEFUL_EXAMPLES / STATEFUL_STEPS run it longer.
"""

from __future__ import annotations

import os
from typing import Any

import brownie
from brownie import BatchAnchor, chain
from hypothesis import HealthCheck
from hypothesis import strategies as st
from test_escrow_stateful import _state_machine_helper
from test_provenance_ledger import revert_message

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "25"))
ROOTS = [b"\x00" * 32, b"\x01" * 32, b"\xab" * 32, b"\xff" * 32]  # the zero root is refused
COUNTS = [0, 1, 2, 1000, 65_535, 65_536, 65_537, 2**32 - 1]
SCANNING = ("CARRIER_ROLE", "MANUFACTURER_ROLE", "MERCHANT_ROLE")
ROLES = (*SCANNING, "INSPECTOR_ROLE")


class AnchorMachine:
    who = st.integers(0, 9)
    root = st.integers(0, len(ROOTS) - 1)
    count = st.sampled_from(COUNTS)
    zero_digest = st.booleans()
    role = st.sampled_from(ROLES)
    grant = st.booleans()

    def __init__(cls, accounts: Any, ledger: Any, anchor: Any) -> None:  # noqa: N805 (brownie calls it on the class)
        cls.accounts, cls.ledger, cls.anchor = list(accounts[:10]), ledger, anchor
        cls.role_ids = {name: getattr(ledger, name)() for name in ROLES}
        cls.base_roles = {
            (i, name): ledger.hasRole(cls.role_ids[name], cls.accounts[i]) for i in range(10) for name in ROLES
        }

    def setup(self) -> None:
        self.roles = dict(self.base_roles)
        self.anchored: dict[tuple[int, int], tuple[int, int]] = {}  # (who, root) -> (anchoredAt, count)
        self.touched: set[tuple[int, int]] = set()

    def rule_anchor(self, who: int, root: int, count: int, zero_digest: bool) -> None:
        sender = self.accounts[who]
        digest = b"\x00" * 32 if zero_digest else b"\xd1" * 32
        self.touched.add((who, root))
        if not any(self.roles[who, name] for name in SCANNING):
            expected = revert_message("BatchAnchorNotScanner", sender)
        elif root == 0 or zero_digest:
            expected = revert_message("BatchAnchorZeroCommitment", ROOTS[root], digest)
        elif not 1 <= count <= 65_536:
            expected = revert_message("BatchAnchorInvalidCount", count)
        elif (who, root) in self.anchored:
            expected = revert_message("BatchAnchorAlreadyAnchored", sender, ROOTS[root])
        else:
            tx = self.anchor.anchorBatch(ROOTS[root], count, digest, {"from": sender})
            stamp = chain[tx.block_number].timestamp
            assert [dict(e) for e in tx.events["BatchAnchored"]] == [
                {
                    "root": "0x" + ROOTS[root].hex(),
                    "submitter": sender.address,
                    "documentDigest": "0x" + digest.hex(),
                    "count": count,
                    "anchoredAt": stamp,
                }
            ]
            self.anchored[who, root] = (stamp, count)
            return
        with brownie.reverts(expected):
            self.anchor.anchorBatch(ROOTS[root], count, digest, {"from": sender})

    def rule_set_role(self, who: int, role: str, grant: bool) -> None:
        change = self.ledger.grantRole if grant else self.ledger.revokeRole
        change(self.role_ids[role], self.accounts[who], {"from": self.accounts[0]})
        self.roles[who, role] = grant

    def invariant_records(self) -> None:
        for who, root in self.touched:
            stored = [int(x) for x in self.anchor.anchorOf(self.accounts[who], ROOTS[root])]
            assert stored == list(self.anchored.get((who, root), (0, 0))), (who, root)
            assert self.anchor.isAnchored(self.accounts[who], ROOTS[root]) == ((who, root) in self.anchored)
        self.touched.clear()


def test_batch_anchor_stateful(accounts: Any, ledger: Any, admin: Any) -> None:
    anchor = BatchAnchor.deploy(ledger, {"from": admin})
    settings: dict[str, Any] = {"max_examples": EXAMPLES, "stateful_step_count": STEPS, "deadline": None}
    settings["suppress_health_check"] = [HealthCheck.too_slow]
    _state_machine_helper()(AnchorMachine, accounts, ledger, anchor, settings=settings)
