"""The deploy files stay consistent with the code: Prometheus config, dashboard, image commands."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.cli import build_parser
from app.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    names = {"triage_review_items", "triage_database_up"}  # the scrape-time collector
    for family in registry.collect():
        names.add(family.name)
        names.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count"))
    return names


def test_dashboard_queries_only_metrics_the_service_exports() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/triage.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\btriage_[a-z_]+", expr)}
    assert used and used <= _exported_names(), used - _exported_names()


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_commands_are_cli_commands() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    commands = re.findall(r"triage ((?:db|serve|apikey)[^&\"\n]*)", dockerfile)
    assert any(c.startswith("db upgrade") for c in commands)
    assert any(c.startswith("serve") for c in commands)
    parser = build_parser()
    for command in commands:
        argv = command.replace("${WORKERS}", "2").split()
        parser.parse_args(argv)  # exits (fails the test) on an unknown command or option
