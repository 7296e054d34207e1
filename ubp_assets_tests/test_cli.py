"""The README's main command, end to end on the tiny scale, and the generator's own command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np

from ubp_assets.cli import raw_plan


def run(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "UBP_DATA_DIR")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ubp_run_end_to_end(tmp_path):
    data = tmp_path / "data"
    done = run(["ubp_assets.cli", "run", "--scale", "tiny", "--data-dir", str(data)], {}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "writing a synthetic release (tiny" in done.stderr
    assert len(list((data / "warehouse" / "events").glob("date=*/data.parquet"))) == 210
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM feature_matrix").fetchone()
    assert events > 10_000
    assert rows == 1_000
    assert (data / "dagster_home" / "dagster.yaml").exists()
    runs = [
        p for p in (data / "dagster_home" / "history" / "runs").glob("*.db") if p.stem != "index"
    ]
    assert len(runs) == 4  # synthetic release, observation, daily partitions, features


def test_raw_plan_generates_reuses_or_reads_as_is(tiny_release, tmp_path):
    assert raw_plan(tmp_path / "empty", "tiny", 7) == "generate"
    assert raw_plan(tiny_release, "tiny", 7) == "reuse"
    assert raw_plan(tiny_release, "tiny", 8) == "generate"
    assert raw_plan(tiny_release, "demo", 7) == "generate"
    real = tmp_path / "real"
    shutil.copytree(tiny_release, real)
    (real / "synthetic_manifest.json").unlink()
    assert raw_plan(real, "tiny", 7) == "external"


def test_ubp_synth_writes_a_release(tmp_path):
    out = tmp_path / "release"
    done = run(
        ["ubp_assets.synthetic.cli", "--scale", "tiny", "--seed", "1", "--out", str(out)],
        {},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "events in" in done.stdout
    assert len(np.load(out / "input" / "relevant_clients.npy")) == 1_000
