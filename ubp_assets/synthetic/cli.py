"""`ubp-synth`: write a synthetic release without Dagster."""

from __future__ import annotations

import argparse
import sys

from ubp_assets.synthetic.release import write_release
from ubp_assets.synthetic.scales import SCALES, get_scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ubp-synth",
        description="Write a synthetic RecSys Challenge 2025 release (six parquet files and "
        "input/relevant_clients.npy) in the challenge's exact schema.",
    )
    parser.add_argument("--scale", default="demo", choices=sorted(SCALES))
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--out", default="data/raw", help="output directory (default: data/raw)")
    args = parser.parse_args(argv)
    scale = get_scale(args.scale)
    print(
        f"writing the {scale.name} release ({scale.n_clients:,} clients, "
        f"{scale.first_day}..{scale.last_day}) to {args.out}",
        file=sys.stderr,
    )
    summary = write_release(
        scale, args.seed, args.out, progress=lambda m: print(m, file=sys.stderr)
    )
    for name, rows in sorted(summary.rows.items()):
        print(f"{name:>20}: {rows:>12,} rows")
    print(f"{'relevant clients':>20}: {summary.n_relevant:>12,}")
    print(f"{summary.n_events:,} events in {summary.seconds:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
