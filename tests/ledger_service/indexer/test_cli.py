"""The ledger-indexer CLI as a person runs it: backfill, follow, status, and every refusal."""

from __future__ import annotations

import pstats
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, cli_env, reference_dump, run_cli, start_cli
from tests.support.activity import mine, write_manifest
from tests.support.chain import deploy_all, free_port, start_anvil
from tests.support.faultproxy import FaultProxy


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("ledger-indexer:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_backfill_and_status(chain: Chain, sqlite_url: str) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=1000, items=4)
    env = cli_env(chain, sqlite_url)
    empty = run_cli(["status"], env)
    assert empty.returncode == 1 and "no index yet" in empty.stdout  # and status did not create one
    result = run_cli(["backfill", "--progress"], env)
    assert result.returncode == 0, result.stderr
    assert "backfill done" in result.stderr and "events/s" in result.stderr
    assert "blk/s" in result.stderr  # the progress bar's rate
    store = Store.open(sqlite_url)
    try:
        assert store.dump() == reference_dump(chain)
    finally:
        store.close()
    again = run_cli(["backfill"], env)
    assert again.returncode == 0 and "0 blocks, 0 events" in again.stderr

    status = run_cli(["status"], env)
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "chain: chain 31337" in out and chain.deployed.ledger.address.lower() in out
    assert f"checkpoint: block {chain.head} " in out
    assert f"head: block {chain.head} " in out
    assert "lag: 0 blocks" in out
    assert "item_events=" in out and "items=" in out

    down = run_cli(["--rpc-attempts", "1", "status"], {**env, "LEDGER_RPC_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 3 and "head: unavailable" in down.stdout


def test_a_first_backfill_builds_the_per_item_index_at_its_end(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=300, items=3)
    env = cli_env(chain, sqlite_url)
    first = run_cli(["backfill", "--no-progress"], env)
    assert first.returncode == 0, first.stderr
    assert "item_index_deferred" in first.stderr and "item_index_built" in first.stderr
    with Store.open(sqlite_url) as store:
        assert store.deferred_indexes() == []
        with store.engine.begin() as conn:  # as a backfill killed after its first batch leaves it
            conn.exec_driver_sql("DROP INDEX ix_item_events_item")
        dump = store.dump()
    status = run_cli(["status"], env)
    assert "missing index: ix_item_events_item" in status.stdout, status.stdout
    chain.activity.bulk(events=20, items=2)
    again = run_cli(["backfill", "--no-progress"], env)
    assert again.returncode == 0, again.stderr
    assert "item_index_deferred" not in again.stderr and "item_index_built" in again.stderr
    assert "missing index" not in run_cli(["status"], env).stdout
    with Store.open(sqlite_url) as store:
        assert store.deferred_indexes() == []
        assert store.dump() == reference_dump(chain)
        assert store.dump() != dump
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_item_events_item")
        log = tmp_path / "follow.log"
        follower = start_cli(["follow", "--poll-interval", "0.05"], env, log=log)  # builds it before following
        procs.append(follower)
        deadline = time.monotonic() + 30
        while store.deferred_indexes() and time.monotonic() < deadline:
            assert follower.poll() is None, log.read_text()
            time.sleep(0.05)
        assert store.deferred_indexes() == []
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=15) == 0, log.read_text()
    assert "item_index_built" in log.read_text()


def test_backfill_with_and_without_fetch_processes_gives_the_same_index(chain: Chain, tmp_path: Path) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=800, items=4)
    dumps = []
    for flags in (
        ["--fetch-process", "--max-batch-events", "300"],
        ["--fetch-processes", "3", "--max-batch-events", "300"],
        ["--no-fetch-process"],
    ):
        url = f"sqlite:///{tmp_path / (flags[0] + '.sqlite3')}"
        result = run_cli([*flags, "--target-logs", "100", "backfill", "--no-progress"], cli_env(chain, url))
        assert result.returncode == 0, result.stderr
        with Store.open(url) as store:
            dumps.append(store.dump())
    assert dumps[0] == dumps[1] == dumps[2]


def test_backfill_profile_writes_one_profile_per_thread(chain: Chain, sqlite_url: str, tmp_path: Path) -> None:
    """--profile: the writer's (main) and the fetch thread's cProfile files, readable by pstats; the index is the
    one a backfill without it makes."""
    chain.activity.lifecycle()
    chain.activity.bulk(events=300, items=4)
    folder = tmp_path / "profile"
    result = run_cli(["backfill", "--no-progress", "--profile", str(folder)], cli_env(chain, sqlite_url))
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in folder.iterdir())
    assert "main.pstats" in files
    assert any(name.startswith("thread-") and "ledger-indexer-fetch" in name for name in files), files
    writer = pstats.Stats(str(folder / "main.pstats"))
    assert any(name == "_cmd_backfill" for _, _, name in writer.stats)  # type: ignore[attr-defined]
    with Store.open(sqlite_url) as store:
        assert store.dump() == reference_dump(chain)


def test_a_profile_folder_that_cannot_be_made_is_refused(chain: Chain, sqlite_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(["backfill", "--profile", str(blocker / "profile")], cli_env(chain, sqlite_url))
    assert result.returncode != 0
    assert "cannot create the profile folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--max-batch-events", "--fetch-processes"])
def test_a_batch_limit_or_process_count_below_one_is_refused(chain: Chain, sqlite_url: str, option: str) -> None:
    result = run_cli([option, "0", "backfill"], cli_env(chain, sqlite_url))
    assert result.returncode == 2
    assert f"{option}: must be at least 1, got 0" in result.stderr


def test_wrong_chain_or_deployment_is_refused(chain: Chain, sqlite_url: str, tmp_path: Path) -> None:
    chain.activity.lifecycle()
    env = cli_env(chain, sqlite_url)
    for name, manifest in (
        ("chain id", write_manifest(chain.deployed, tmp_path / "wrong-id.json", chain_id=999)),
        ("genesis", write_manifest(chain.deployed, tmp_path / "wrong-genesis.json", genesis="0x" + "01" * 32)),
    ):
        result = run_cli(["backfill"], {**env, "LEDGER_DEPLOYMENT_FILE": str(manifest)})
        assert result.returncode == 1, name
        assert "wrong chain: the node at" in one_line_error(result.stderr), name

    assert run_cli(["backfill"], env).returncode == 0
    store = Store.open(sqlite_url)
    before = store.dump()
    store.close()
    second = write_manifest(deploy_all(chain.node), tmp_path / "second.json")  # same chain, other contracts
    for command in ("backfill", "follow"):
        result = run_cli([command], {**env, "LEDGER_DEPLOYMENT_FILE": str(second)})
        assert result.returncode == 1, command
        line = one_line_error(result.stderr)
        assert "wrong chain or deployment" in line and "refusing to mix" in line
    store = Store.open(sqlite_url)
    try:
        assert store.dump() == before
    finally:
        store.close()


def test_follow_holds_the_sqlite_lock_and_stops_cleanly_on_sigterm(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    chain.activity.lifecycle()
    env = cli_env(chain, sqlite_url)
    log = tmp_path / "follow.log"
    follower = start_cli(["follow", "--poll-interval", "0.05"], env, log=log)
    procs.append(follower)
    store = Store.open(sqlite_url)
    try:
        deadline = time.monotonic() + 30
        while (store.checkpoint() is None or store.checkpoint().number < chain.head) and time.monotonic() < deadline:  # type: ignore[union-attr]
            assert follower.poll() is None, log.read_text()
            time.sleep(0.05)
        second = run_cli(["backfill"], env)
        assert second.returncode == 1
        assert "another indexer is writing" in one_line_error(second.stderr)
        chain.activity.lifecycle()  # the follower keeps up
        deadline = time.monotonic() + 30
        while store.checkpoint().number < chain.head and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        assert store.dump() == reference_dump(chain)
    finally:
        store.close()
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=15) == 0, log.read_text()
    output = log.read_text()
    assert "stopping" in output and "signal=SIGTERM" in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "env_changes", "code", "message"),
    [
        (["--rpc-attempts", "2", "backfill"], {"LEDGER_RPC_URL": "http://127.0.0.1:{port}"}, 3, "unavailable"),
        (["backfill"], {"LEDGER_DEPLOYMENT_FILE": "/nonexistent/31337.json"}, 1, "not found: deploy first"),
        (["backfill"], {"LEDGER_FINALITY_DEPTH": "0"}, 1, "invalid settings: finality_depth"),
        (["backfill"], {"LEDGER_DATABASE_URL": "nosuchdb://x"}, 1, "invalid database URL"),
        (["status"], {"LEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:{port}/x"}, 3, "database"),
    ],
)
def test_every_error_is_one_line_and_a_non_zero_exit(
    chain: Chain, sqlite_url: str, args: list[str], env_changes: dict[str, str], code: int, message: str
) -> None:
    port = str(free_port())
    env = {**cli_env(chain, sqlite_url), **{k: v.replace("{port}", port) for k, v in env_changes.items()}}
    result = run_cli(args, env, timeout=60)
    assert result.returncode == code, result.stderr
    assert message in one_line_error(result.stderr)


def test_follow_waits_out_a_dead_node_and_still_stops_at_once_on_sigterm(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    env = cli_env(chain, sqlite_url, rpc_url=f"http://127.0.0.1:{free_port()}")
    log = tmp_path / "follow.log"
    follower = start_cli(["--rpc-attempts", "1000", "follow"], env, log=log)
    procs.append(follower)
    deadline = time.monotonic() + 30
    while "rpc_retry" not in log.read_text() and time.monotonic() < deadline:
        assert follower.poll() is None, log.read_text()
        time.sleep(0.05)
    assert "rpc_retry" in log.read_text()  # it keeps trying
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=10) == 0, log.read_text()
    assert "stopped" in log.read_text()


def test_status_says_when_the_checkpoint_is_off_the_nodes_chain_or_the_node_on_another_genesis(
    chain: Chain, sqlite_url: str
) -> None:
    items = chain.activity.register(1)
    chain.activity.lifecycle()  # many blocks: the ones rolled back below do not hold the item's registration
    env = cli_env(chain, sqlite_url)
    assert run_cli(["backfill"], env).returncode == 0
    checkpoint = chain.head

    chain.node.rpc("anvil_rollback", [2])  # the node is behind, on the indexed chain
    behind = run_cli(["status"], env)
    assert behind.returncode == 0, behind.stderr
    assert "lag: 0 blocks (the node is 2 blocks behind the checkpoint, on the indexed chain)" in behind.stdout

    chain.activity.send(chain.activity.record_batch_call(items, 3), 3)
    mine(chain.node, 1)
    assert chain.head == checkpoint  # as high as the checkpoint, other blocks
    status = run_cli(["status"], env)
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert f"the checkpoint is not on the node's chain: the node's block {checkpoint} is " in out, out
    assert "lag: n/a" in out and "lag: 0 blocks" not in out
    mine(chain.node, 3)  # higher, still another branch
    out = run_cli(["status"], env).stdout
    assert "not on the node's chain" in out and "lag: n/a" in out and "lag: 3 blocks" not in out, out

    other = start_anvil("--timestamp", "1000000000")  # another genesis, whenever the two started
    try:
        mine(other, checkpoint + 7)
        foreign = run_cli(["status"], {**env, "LEDGER_RPC_URL": other.url})
        assert foreign.returncode == 1, foreign.stdout
        out = foreign.stdout
        assert "node: on another chain: genesis 0x" in out and "lag: n/a" in out, out
        assert "lag: 7 blocks" not in out and "not on the node's chain" not in out
    finally:
        other.stop()


@pytest.mark.parametrize("shape", ["shorter", "longer"])
def test_a_follower_whose_node_is_swapped_for_another_chain_stops_with_a_clear_error(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path, shape: str
) -> None:
    """A node replaced by one on another genesis (reset, misrouted): not "node behind" forever, not "reorg
    deeper than finality", but one line that names the other chain, and the index left as it was."""
    chain.activity.lifecycle()
    other = start_anvil("--timestamp", "1000000000")  # another genesis, whenever the two started
    try:
        mine(other, 3 if shape == "shorter" else chain.head + 20)
        with FaultProxy(chain.node.url) as proxy:
            log = tmp_path / "follow.log"
            follower = start_cli(["follow", "--poll-interval", "0.05"], cli_env(chain, sqlite_url, proxy.url), log=log)
            procs.append(follower)
            with Store.open(sqlite_url) as store:
                deadline = time.monotonic() + 30
                while (checkpoint := store.checkpoint()) is None or checkpoint.number < chain.head:
                    assert follower.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.05)
                before = store.dump()
                proxy.upstream = other.url
                try:
                    code = follower.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"the follower kept running: {log.read_text()[-2000:]}") from None
                assert code == 1, log.read_text()
                line = one_line_error(log.read_text())
                assert "another chain" in line and "deeper than finality" not in line, line
                assert store.dump() == before
    finally:
        other.stop()
