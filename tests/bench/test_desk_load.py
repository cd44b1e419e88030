"""The load test (bench/desk_load.py with Locust) runs for a few seconds and reports every endpoint and the live
stream's delay: the figures in docs/benchmarks.md come from a script that works. No speed is asserted here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed (the test extra)")
def test_the_load_test_runs_briefly_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    name = f"caredesk_bench_load_test_{os.getpid()}"
    try:
        done = subprocess.run(
            [sys.executable, str(BENCH / "desk_load.py"), "--users", "3", "--seconds", "4", "--servers", "2",
             "--cases", "30", "--ingest-rate", "4", "--db", name, "--drop", "--json", str(out)],
            cwd=BENCH, env=env, capture_output=True, text=True, timeout=180,
        )
    finally:  # --drop did it unless the run failed
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    names = {row["Name"] for row in figures["endpoints"]}
    assert {"/login/ (post)", "/stream (connect)"} <= names
    assert names & {"/ (inbox)", "/cases/ (list)", "/cases/[id]/"}
    assert all(row["Failure Count"] == "0" for row in figures["endpoints"]), figures["endpoints"]
    assert figures["ingested"] > 0
    assert figures["stream"]["events"] > 0  # posts ingested during the run reached the agents' streams
