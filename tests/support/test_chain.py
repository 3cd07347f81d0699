"""The anvils the tests, benchmarks and scripts start leave no block states on disk.

By default anvil moves the states of older blocks to ~/.foundry/anvil/tmp and leaves them there when it
is stopped: a few hundred MB per test run, more at benchmark scale, which once filled the CI machine's disk.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.chain import ANVIL_NO_DISK_STATES, ROOT, start_anvil


def test_the_scripts_give_anvil_the_same_flags() -> None:
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    found = re.search(r"^ANVIL_NO_DISK_STATES=\((.*)\)$", lib, re.MULTILINE)
    assert found, "scripts/lib.sh no longer defines ANVIL_NO_DISK_STATES"
    assert tuple(shlex.split(found.group(1))) == ANVIL_NO_DISK_STATES


def test_an_anvil_past_its_in_memory_window_writes_no_state_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    node = start_anvil()
    try:
        node.rpc("anvil_mine", [hex(1200)])  # well past the ~500 states anvil keeps in memory
        assert int(node.rpc("eth_blockNumber"), 16) == 1200
    finally:
        node.stop()
    # Without the flags, this finds ~1,200 files under .foundry/anvil/tmp in this HOME.
    assert [path for path in (tmp_path / ".foundry").rglob("*") if path.is_file()] == []
