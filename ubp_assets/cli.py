"""`ubp run`: the main job end to end, from (synthetic or real) raw files to the probe's scores.

Runs go through a persistent Dagster instance (DAGSTER_HOME, default <data_dir>/dagster_home), so
`dagster dev` shows their history, lineage and metadata afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ubp_assets.synthetic.scales import SCALES


def _say(message: str) -> None:
    print(f"[ubp] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ubp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the main job end to end")
    scales = list(SCALES)
    run.add_argument("--scale", default="demo", choices=scales, help="synthetic data's scale")
    run.add_argument("--seed", type=int, default=2025, help="synthetic data seed")
    run.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    run.add_argument("--raw-dir", help="a real release's folder to read instead of synthetic data")
    bench = sub.add_parser("bench-synth", help="benchmark the generator's speed and peak memory")
    bench.add_argument("--scale", default="tenth", choices=scales, help="scale to measure")
    bench.add_argument("--reference", default="demo", choices=scales, help="measured beside it")
    bench_features = sub.add_parser(
        "bench-features", help="benchmark raw -> feature_matrix, and the cost of a new day"
    )
    bench_features.add_argument(
        "--scale", default="tenth", choices=scales, help="default: tenth (17M events)"
    )
    bench_model = sub.add_parser(
        "bench-model", help="benchmark the autoencoder's training throughput and study trials"
    )
    bench_model.add_argument("--scale", default="demo", choices=scales, help="default: demo")
    bench_model.add_argument("--trials", type=int, default=3, help="study trials to time")
    args = parser.parse_args(argv)
    if args.command == "bench-model":
        from ubp_assets.benchmarks import bench_model as bench
        from ubp_assets.benchmarks import print_model

        print_model(bench(args.scale, trials=args.trials))
        return 0
    if args.command == "bench-features":
        from ubp_assets.benchmarks import bench_features as bench
        from ubp_assets.benchmarks import print_features

        print_features(bench(args.scale))
        return 0
    if args.command == "bench-synth":
        from ubp_assets.benchmarks import bench_synthetic, print_synthetic

        print_synthetic(bench_synthetic(args.scale, args.reference), args.scale, args.reference)
        return 0
    return run_main_job(args.scale, args.seed, args.data_dir, args.raw_dir)


def run_main_job(scale: str, seed: int, data_dir: str | None, raw_dir: str | None) -> int:
    if data_dir:
        os.environ["UBP_DATA_DIR"] = str(Path(data_dir).resolve())
    if raw_dir:
        os.environ["UBP_RAW_DIR"] = str(Path(raw_dir).resolve())
    data = Path(os.environ.get("UBP_DATA_DIR", "data")).resolve()
    os.environ.setdefault("DAGSTER_HOME", str(data / "dagster_home"))
    prepare_dagster_home(Path(os.environ["DAGSTER_HOME"]))

    import dagster as dg

    from ubp_assets.definitions import defs
    from ubp_assets.partitions import event_days

    instance = dg.DagsterInstance.get()
    storage = defs.resources["storage"]
    raw = storage.raw_path
    started = time.perf_counter()

    wanted = {"scale": scale, "seed": seed}
    plan = raw_plan(raw, scale, seed)
    if plan == "external":
        _say(f"reading the release in {raw} as it is (not synthetic)")
    elif plan == "reuse":
        _say(f"synthetic release ({scale}, seed {seed}) already in {raw}; not regenerated")
    else:
        _say(f"writing a synthetic release ({scale}, seed {seed}) to {raw}")
        _check(
            defs.resolve_job_def("synthetic_raw_job").execute_in_process(
                instance=instance,
                run_config={"ops": {"synthetic_raw": {"config": wanted}}},
            )
        )

    _say("observing the raw files")
    _check(defs.resolve_job_def("observe_raw_job").execute_in_process(instance=instance))

    keys = event_days.get_partition_keys()
    _say(
        f"events and daily feature partials ({len(keys)} day partitions), the challenge split, "
        "the families folded over the history, the feature matrix: one run"
    )
    _check(
        defs.resolve_job_def("update_job").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
    )
    _say(
        "targets, the baselines, the Optuna study, the autoencoder, embeddings, probe scores, "
        "the history bound"
    )
    _check(defs.resolve_job_def("embeddings_job").execute_in_process(instance=instance))
    report = storage.reports_dir / "probe_scores.md"
    if report.exists():
        print(report.read_text().split("## Every term")[0].strip(), flush=True)
    bound = storage.reports_dir / "history_bound.md"
    if bound.exists():
        print("\n" + bound.read_text().strip(), flush=True)
    _say(f"done in {time.perf_counter() - started:.1f}s; data in {storage.root}")
    _say(f"inspect it: DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev")
    return 0


def prepare_dagster_home(home: Path) -> None:
    """A local SQLite instance in `home` (the project's settings, unless the user has their own
    dagster.yaml there)."""
    from ubp_assets.instance import write_instance_yaml

    write_instance_yaml(home)


def raw_plan(raw: Path, scale: str, seed: int) -> str:
    """What to do with the raw folder: "external" (a release no synthetic run wrote: read it as
    it is), "reuse" (the synthetic release asked for is there) or "generate"."""
    from ubp_assets.events.schema import RAW_FILES
    from ubp_assets.synthetic.release import MANIFEST

    complete = all((raw / f.filename).exists() for f in RAW_FILES.values())
    manifest = raw / MANIFEST
    if not manifest.exists():
        return "external" if complete else "generate"
    have = json.loads(manifest.read_text())
    same = have.get("scale") == scale and have.get("seed") == seed
    return "reuse" if same and complete else "generate"


def _check(result) -> None:
    if not result.success:
        raise SystemExit("[ubp] run failed; see the log above")


if __name__ == "__main__":
    raise SystemExit(main())
