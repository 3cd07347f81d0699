"""scripts/demo_api.py writes the demo keys and consumers' tokens readable by their owner only."""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_api.py"


@pytest.fixture(scope="module")
def demo_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: new files world-readable
    yield
    os.umask(previous)


def test_files_with_tokens_are_private_from_their_creation(
    demo_api: ModuleType, tmp_path: Path, open_umask: None
) -> None:
    fresh = tmp_path / "var" / "demo-api.json"
    demo_api.write_private(fresh, '{"return_tokens": {"boots": "rrt_x"}}\n')
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert fresh.read_text() == '{"return_tokens": {"boots": "rrt_x"}}\n'
    old = tmp_path / "demo-keys.json"
    old.write_text("before, world-readable")
    old.chmod(0o644)
    demo_api.write_private(old, "{}\n")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text() == "{}\n"


def test_the_script_writes_its_token_files_only_through_write_private() -> None:
    source = SCRIPT.read_text()
    assert "DONE_FILE.write_text" not in source and "KEYS_FILE.write_text" not in source
    assert source.count("write_private(KEYS_FILE") == 1 and source.count("write_private(DONE_FILE") == 1
