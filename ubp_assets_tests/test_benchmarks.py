"""The benchmarks' bookkeeping: which memory and which seconds each figure counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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


def test_the_spans_leave_scoring_apart_and_take_each_windows_peak():
    sampler = RssSampler()
    # time 0..100: the release written (9 GiB), then the events (2), the matrix (3),
    # the probe inside the embeddings (8), the embeddings (5)
    sampler.samples = [(0, 9), (12, 2), (25, 3), (45, 8), (65, 5), (85, 1)]
    sampler.samples = [(t, g * 2**30) for t, g in sampler.samples]
    spans = {
        "synthetic_raw": (0.0, 10.0),
        "events": (10.0, 20.0),
        "feature_matrix": (20.0, 30.0),
        "probe_scores": (40.0, 50.0),
        "user_embeddings": (60.0, 70.0),
        "history_bound_scores": (80.0, 90.0),
    }
    figures = run_figures(spans, sampler)
    assert figures["raw_to_feature_matrix"] == {"seconds": 20.0, "peak_gib": 3.0}
    # 10 -> 70, less the probe's 10 s (and its 8 GiB) inside it; the bound ran after it
    assert figures["raw_to_user_embeddings"] == {"seconds": 50.0, "peak_gib": 5.0}
    assert figures["steps"]["probe_scores"] == {"seconds": 10.0, "peak_gib": 8.0}
    assert list(figures["steps"]) == list(spans)  # in the order they ran
    assert figures["peak_gib"] == 9.0
