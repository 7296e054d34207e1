"""The benchmarks' bookkeeping (which memory and which seconds each figure counts), and the workers
benchmark run small."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ubp_assets.benchmarks import RssSampler, run_figures, tree_rss


def test_the_process_tree_counts_a_childs_memory():
    alone = tree_rss(os.getpid())
    holder = (
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", holder])
    try:
        deadline = time.time() + 20
        while tree_rss(os.getpid()) - alone < 250 * 2**20 and time.time() < deadline:
            time.sleep(0.2)
        assert tree_rss(os.getpid()) - alone >= 250 * 2**20
        assert tree_rss(child.pid) >= 250 * 2**20
    finally:
        child.kill()
        child.wait()


def test_the_spans_start_at_the_events_and_take_each_windows_peak():
    sampler = RssSampler()
    # time 0..80: the release written (9 GiB), then the events (2), the matrix (3), the
    # study (8), the embeddings (5), the baseline after them (7)
    sampler.samples = [(0, 9), (12, 2), (25, 3), (45, 8), (65, 5), (75, 7)]
    sampler.samples = [(t, g * 2**30) for t, g in sampler.samples]
    spans = {
        "synthetic_raw": (0.0, 10.0),
        "events": (10.0, 20.0),
        "feature_matrix": (20.0, 30.0),
        "hparam_study": (40.0, 50.0),
        "user_embeddings": (60.0, 70.0),
        "aggregated_baseline_embeddings": (70.0, 80.0),
    }
    figures = run_figures(spans, sampler)
    assert figures["raw_to_feature_matrix"] == {"seconds": 20.0, "peak_gib": 3.0}
    assert figures["raw_to_user_embeddings"] == {"seconds": 60.0, "peak_gib": 8.0}
    assert figures["steps"]["hparam_study"] == {"seconds": 10.0, "peak_gib": 8.0}
    assert list(figures["steps"]) == list(spans)  # in the order they ran
    assert figures["peak_gib"] == 9.0


@pytest.mark.slow
def test_the_workers_benchmark_backfills_on_both_executors(pg_database, redis_url, s3_data, capsys):
    """Runs on the servers CI starts (the fixtures skip, or fail in CI, without them)."""
    from ubp_assets.benchmarks import bench_workers, print_workers

    figures = bench_workers("tiny", workers=1, seed=7, days=5)
    reference = figures["sqlite_seconds"]
    assert reference > 0 and figures["postgres_seconds"] > 0 and figures["celery_seconds"] > 0
    assert figures["celery_ratio"] == round(figures["celery_seconds"] / reference, 2)
    assert figures["celery_s3_ratio"] == round(figures["celery_s3_seconds"] / reference, 2)
    print_workers(figures)
    assert "celery with 1 workers" in (printed := capsys.readouterr().out)
    assert "on the S3 server" in printed
