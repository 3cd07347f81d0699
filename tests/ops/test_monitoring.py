"""ops/: the Prometheus alert rules and the Grafana dashboard are valid and query only what the service exposes.

- ``promtool check config`` of the example configuration (prometheus.yml), ``promtool check rules`` and
  ``promtool test rules`` (Debian's prometheus package, installed by
  scripts/bootstrap.sh): the rules parse, and the unit tests of alerts_test.yml fire the lag, chain-problem,
  stuck-transaction, error-rate and stuck-batch alerts on the series they are meant for (and a batch that
  fails for a few minutes does not fire).
- Every ``ledger_*`` series a rule or a dashboard panel queries is one the service's processes expose (the
  families of ledger_service/metrics and of the API's scrape-time collector, as the text format names their
  series): a renamed metric cannot leave an alert that never fires.
- ``promtool check metrics`` finds nothing to say about the exposition itself (names, units, help).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import ledger_service.metrics.batcher
import ledger_service.metrics.chain
import ledger_service.metrics.http
import ledger_service.metrics.indexer  # noqa: F401 (their families are part of the exposition checked)
from api.health import IndexCollector
from ledger_service.metrics import METRIC_NAMES, exposition
from ledger_service.store.handle import Store

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "ledger.json"
NAME = re.compile(r"\b(ledger_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/bootstrap.sh installs Debian's prometheus package, which has it")
    return found


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, set[str]]:
    """The text format of every metric family (the scrape-time ones from an empty index), and every series name
    it can hold."""
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('ops') / 'index.sqlite3'}")
    try:
        text = exposition(extra=[IndexCollector(store)]).decode()
    finally:
        store.close()
    series = {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        if family.name.startswith("ledger_")
        for suffix in SUFFIXES.get(family.type, ("",))
    }
    return text, series


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard target."""
    rules = yaml.safe_load(ALERTS.read_text())
    found = [(f"alert {r['alert']}", str(r["expr"])) for group in rules["groups"] for r in group["rules"]]
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    found += [(f"panel {p['title']!r}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, check=False, cwd=ALERTS.parent
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # the example configuration loads the rules and names the jobs they query
    config = subprocess.run([tool, "check", "config", str(CONFIG)], capture_output=True, text=True, check=False)
    assert config.returncode == 0, config.stdout + config.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert jobs == {"ledger-api", "ledger-indexer", "ledger-batcher"}
    assert all(f'job="{job}"' in ALERTS.read_text() for job in jobs - {"ledger-api"})


def test_every_queried_series_is_exposed(exposed: tuple[str, set[str]]) -> None:
    _, series = exposed
    queries = _queries()
    assert len(queries) >= 12 + 14
    unknown = {(where, name) for where, expr in queries for name in NAME.findall(expr) if name not in series}
    assert unknown == set()
    # and every query reads something of ours (or Prometheus' own `up` of our jobs)
    assert [where for where, expr in queries if not NAME.search(expr) and "up{" not in expr] == []


def test_the_exposition_holds_every_defined_family_and_passes_promtool(exposed: tuple[str, set[str]]) -> None:
    text, _ = exposed
    families = {family.name for family in text_string_to_metric_families(text) if family.name.startswith("ledger_")}
    # exactly the families METRIC_NAMES lists (the parser names counters without _total)
    assert families == {name.removesuffix("_total") for name in METRIC_NAMES}
    linted = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "ledger_" not in linted.stdout + linted.stderr


def test_the_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
