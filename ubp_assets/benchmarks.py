"""Benchmarks that print figures; speed and memory goals live here, never in timed tests.

Each figure comes with a reference measured in the same run, so that a ratio means the same on a
laptop and on a CI machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time


def _child_peak(code: str) -> tuple[dict, float, int]:
    """Run code in a fresh interpreter; its printed JSON, wall seconds and peak RSS in bytes."""
    wrapper = (
        "import json, resource, sys\n"
        f"{code}\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'result': result, 'peak': peak}))\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    return payload["result"], seconds, payload["peak"]


def bench_synthetic(scale: str, reference: str = "demo", seed: int = 2025) -> dict:
    """Generator throughput and peak memory at `scale`, against the `reference` scale.

    Memory is bounded by the chunk of clients, not by the release: the peak ratio stays near 1
    however many clients the scale has.
    """
    figures = {}
    for name in (reference, scale):
        with tempfile.TemporaryDirectory() as out:
            code = (
                "from ubp_assets.synthetic import get_scale, write_release\n"
                f"s = write_release(get_scale({name!r}), {seed}, {out!r})\n"
                "result = {'events': s.n_events, 'clients': s.n_clients}\n"
            )
            result, seconds, peak = _child_peak(code)
        figures[name] = {
            **result,
            "seconds": round(seconds, 1),
            "events_per_second": round(result["events"] / seconds),
            "peak_rss_gib": round(peak / 2**30, 2),
        }
    figures["peak_ratio"] = round(
        figures[scale]["peak_rss_gib"] / figures[reference]["peak_rss_gib"], 2
    )
    figures["events_ratio"] = round(figures[scale]["events"] / figures[reference]["events"], 1)
    return figures


def print_synthetic(figures: dict, scale: str, reference: str) -> None:
    header = ("scale", "events", "clients", "seconds", "events/s", "peak GiB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 12, 11, 8, 10, 9), strict=True)))
    for name in (reference, scale):
        f = figures[name]
        print(
            f"{name:>8} {f['events']:>12,} {f['clients']:>11,} {f['seconds']:>8} "
            f"{f['events_per_second']:>10,} {f['peak_rss_gib']:>9}"
        )
    print(
        f"{figures['events_ratio']}x the events of {reference} with "
        f"{figures['peak_ratio']}x its peak memory"
    )
