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
    slots = sub.add_parser(
        "slots",
        help="list who holds the instance's pool slots; end dead runs or free a run's slots",
    )
    slots.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    slots.add_argument(
        "--free", metavar="RUN_ID", help="free this run's slots (marks it failed if unfinished)"
    )
    args = parser.parse_args(argv)
    if args.command == "slots":
        return slots_main(args.data_dir, args.free)
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
    from ubp_assets.runs import RunInterrupted, end_dead_runs

    instance = dg.DagsterInstance.get()
    storage = defs.resources["storage"]
    raw = storage.raw_path
    started = time.perf_counter()
    ended = end_dead_runs(instance)
    if ended:
        _say(
            f"ended {len(ended)} run(s) a killed process left unfinished or holding pool slots: "
            + "; ".join(e.describe() for e in ended)
        )
    try:
        _run_jobs(
            instance, defs, raw=raw, scale=scale, seed=seed, keys=event_days.get_partition_keys()
        )
    except RunInterrupted:
        # The run is canceled and recorded; a native thread pool (DuckDB's, polars') the interrupt
        # left mid-task can abort in its destructors at interpreter exit, so leave without them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    report = storage.reports_dir / "probe_scores.md"
    if report.exists():
        print(report.read_text().split("## Every term")[0].strip(), flush=True)
    bound = storage.reports_dir / "history_bound.md"
    if bound.exists():
        print("\n" + bound.read_text().strip(), flush=True)
    _say(f"done in {time.perf_counter() - started:.1f}s; data in {storage.root}")
    _say(f"inspect it: DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev")
    return 0


def _run_jobs(instance, defs, *, raw: Path, scale: str, seed: int, keys: list[str]) -> None:
    from ubp_assets.runs import execute_job

    def run(job: str, **kwargs) -> None:
        if not execute_job(instance, defs.resolve_job_def(job), _say, **kwargs):
            raise SystemExit("[ubp] run failed; see the log above")

    wanted = {"scale": scale, "seed": seed}
    plan = raw_plan(raw, scale, seed)
    if plan == "external":
        _say(f"reading the release in {raw} as it is (not synthetic)")
    elif plan == "reuse":
        _say(f"synthetic release ({scale}, seed {seed}) already in {raw}; not regenerated")
    else:
        _say(f"writing a synthetic release ({scale}, seed {seed}) to {raw}")
        run("synthetic_raw_job", run_config={"ops": {"synthetic_raw": {"config": wanted}}})

    _say("observing the raw files")
    run("observe_raw_job")
    _say(
        f"events and daily feature partials ({len(keys)} day partitions), the challenge split, "
        "the families folded over the history, the feature matrix: one run"
    )
    run(
        "update_job",
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
    _say(
        "targets, the baselines, the Optuna study, the autoencoder, embeddings, probe scores, "
        "the history bound"
    )
    run("embeddings_job")


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


def slots_main(data_dir: str | None, free: str | None) -> int:
    """`ubp slots`: the pools' holders; dead runs of `ubp run` ended; `--free` frees one run."""
    data = Path(data_dir or os.environ.get("UBP_DATA_DIR", "data")).resolve()
    os.environ.setdefault("DAGSTER_HOME", str(data / "dagster_home"))
    import dagster as dg

    from ubp_assets.runs import end_dead_runs, slot_holders

    with dg.DagsterInstance.get() as instance:
        if free:
            run = instance.get_run_by_id(free)
            if run is None:
                raise SystemExit(f"[ubp] no run {free} in {os.environ['DAGSTER_HOME']}")
            if not run.is_finished:
                instance.report_run_failed(run, message="pool slots freed by `ubp slots --free`")
            instance.event_log_storage.free_concurrency_slots_for_run(free)
            _say(f"freed the pool slots of run {free}")
        for ended in end_dead_runs(instance):
            _say(f"ended {ended.describe()}")
        holders = slot_holders(instance)
        if not holders:
            print("no pool slot is held")
        for h in holders:
            print(f"{h.pool}: run {h.run_id} ({h.job_name}, {h.status}), step {h.step_key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
