"""`ubp run`: the main job end to end, from (synthetic or real) raw files to the probe's scores.
`ubp validate` and `ubp score`: anyone's embeddings checked against the organisers' rules and
scored beside the project's methods.

Runs go through a persistent Dagster instance (DAGSTER_HOME, default <data_dir>/dagster_home), so
`dg dev` shows their history, lineage and metadata afterwards. The command's settings are passed
to the definitions as resources; the environment is read, never written.
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
    run.add_argument(
        "--probe-methods",
        help="comma-separated methods probe_scores scores, or 'all' (default: all, except at the "
        "full release's size: universal,aggregated_baseline; or $UBP_PROBE_METHODS)",
    )
    run.add_argument(
        "--no-scoring",
        action="store_true",
        help="stop at the submission files: no probe scores, no history bound",
    )
    bench = sub.add_parser("bench-synth", help="benchmark the generator's speed and peak memory")
    bench.add_argument("--scale", default="tenth", choices=scales, help="scale to measure")
    bench.add_argument("--reference", default="demo", choices=scales, help="measured beside it")
    bench_features = sub.add_parser(
        "bench-features", help="benchmark raw -> feature_matrix, and the cost of a new day"
    )
    bench_features.add_argument(
        "--scale", default="tenth", choices=scales, help="default: tenth (17M events)"
    )
    bench_scale = sub.add_parser(
        "bench-scale",
        help="benchmark `ubp run` end to end at two scales: each step's time and peak",
    )
    bench_scale.add_argument("--scale", default="full", choices=scales, help="default: full")
    bench_scale.add_argument("--reference", default="quarter", choices=scales, help="run first")
    bench_model = sub.add_parser(
        "bench-model", help="benchmark the autoencoder's training throughput and study trials"
    )
    bench_model.add_argument("--scale", default="demo", choices=scales, help="default: demo")
    bench_model.add_argument("--trials", type=int, default=3, help="study trials to time")
    bench_workers = sub.add_parser(
        "bench-workers",
        help="benchmark a backfill of every day on celery workers against the default executor",
    )
    bench_workers.add_argument("--scale", default="demo", choices=scales, help="default: demo")
    bench_workers.add_argument("--workers", type=int, default=2, help="celery workers to start")
    slots = sub.add_parser(
        "slots",
        help="list who holds the instance's pool slots; end dead runs or free a run's slots",
    )
    slots.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    slots.add_argument(
        "--free", metavar="RUN_ID", help="free this run's slots (marks it failed if unfinished)"
    )
    resume = sub.add_parser(
        "resume",
        help="re-execute a failed run (a `dagster job execute` on celery workers, say) from its "
        "failure, with the environment's definitions and executor",
    )
    resume.add_argument("run_id", help="the failed run")
    resume.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    validate = sub.add_parser(
        "validate", help="check a folder of client_ids.npy / embeddings.npy against the rules"
    )
    validate.add_argument("folder", help="the folder to check")
    validate.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    validate.add_argument("--raw-dir", help="the release whose relevant clients to check against")
    score = sub.add_parser(
        "score", help="score a folder of embeddings beside the methods of the last `ubp run`"
    )
    score.add_argument("folder", help="a folder of client_ids.npy / embeddings.npy")
    score.add_argument("--name", help="its name in the report (default: the folder's name)")
    score.add_argument("--data-dir", help="data directory (default: $UBP_DATA_DIR or ./data)")
    score.add_argument("--raw-dir", help="the release the data directory was built from")
    args = parser.parse_args(argv)
    commands = {
        "run": lambda: run_main_job(
            args.scale,
            args.seed,
            args.data_dir,
            args.raw_dir,
            args.probe_methods,
            scoring=not args.no_scoring,
        ),
        "validate": lambda: validate_main(args.folder, args.data_dir, args.raw_dir),
        "score": lambda: score_main(args.folder, args.name, args.data_dir, args.raw_dir),
        "slots": lambda: slots_main(args.data_dir, args.free),
        "resume": lambda: resume_main(args.run_id, args.data_dir),
        "bench-model": lambda: bench_main("model", args),
        "bench-features": lambda: bench_main("features", args),
        "bench-synth": lambda: bench_main("synth", args),
        "bench-scale": lambda: bench_main("scale", args),
        "bench-workers": lambda: bench_main("workers", args),
    }
    return commands[args.command]()


def bench_main(which: str, args: argparse.Namespace) -> int:
    from ubp_assets import benchmarks

    if which == "model":
        benchmarks.print_model(benchmarks.bench_model(args.scale, trials=args.trials))
    elif which == "scale":
        benchmarks.print_scale(benchmarks.bench_scale(args.scale, args.reference))
    elif which == "workers":
        benchmarks.print_workers(benchmarks.bench_workers(args.scale, workers=args.workers))
    elif which == "features":
        benchmarks.print_features(benchmarks.bench_features(args.scale))
    else:
        figures = benchmarks.bench_synthetic(args.scale, args.reference)
        benchmarks.print_synthetic(figures, args.scale, args.reference)
    return 0


def data_path(data_dir: str | None) -> Path:
    """The local data directory `ubp`'s commands keep their instance, logs and data in."""
    given = data_dir or os.environ.get("UBP_DATA_DIR", "data")
    if "://" in given:
        raise SystemExit(
            f"[ubp] {given} is an object store: ubp's commands keep the Dagster instance and "
            "their logs in a local data directory. Launch the jobs with `dagster job execute` "
            "instead (README, Scaling out)"
        )
    return Path(given).resolve()


def dagster_home(data: Path) -> Path:
    """DAGSTER_HOME where the user set one, else the data directory's own instance."""
    return Path(os.environ.get("DAGSTER_HOME") or data / "dagster_home").resolve()


def project_storage(data_dir: str | None, raw_dir: str | None):
    from ubp_assets.resources import UbpStorage

    raw = raw_dir or os.environ.get("UBP_RAW_DIR", "")
    return UbpStorage(
        data_dir=str(data_path(data_dir)), raw_dir=str(Path(raw).resolve()) if raw else ""
    )


FULL_SIZE_METHODS = ["universal", "aggregated_baseline"]


def probe_settings(probe_methods: str | None, full_size: bool):
    """The probe's settings from the environment, with the methods `ubp run` was asked for. At
    the full release's size the default is the shipped embedding and the organisers' baseline:
    seven methods for a million clients take hours on a CPU."""
    from ubp_assets.resources import ProbeSettings

    settings = ProbeSettings.from_env()
    if probe_methods is None and (settings.methods or not full_size):
        return settings
    wanted = probe_methods or ",".join(FULL_SIZE_METHODS)
    methods = [] if wanted == "all" else [m.strip() for m in wanted.split(",") if m.strip()]
    return ProbeSettings(profile=settings.profile, device=settings.device, methods=methods)


def run_main_job(
    scale: str,
    seed: int,
    data_dir: str | None,
    raw_dir: str | None,
    probe_methods: str | None = None,
    *,
    scoring: bool = True,
) -> int:
    storage = project_storage(data_dir, raw_dir)
    home = dagster_home(storage.root)
    from ubp_assets.instance import write_instance_yaml

    write_instance_yaml(home)

    import dagster as dg

    from ubp_assets.definitions import make_definitions
    from ubp_assets.partitions import event_days
    from ubp_assets.resources import build_resources
    from ubp_assets.run_log import RunLog
    from ubp_assets.runs import RunInterrupted, end_dead_runs

    full_size = scale == "full" or raw_plan(storage.raw_path, scale, seed) == "external"
    try:
        probe = probe_settings(probe_methods, full_size)
    except ValueError as error:
        raise SystemExit(f"[ubp] {error}") from None
    if not scoring:
        _say("no scoring (--no-scoring): the run stops at the submission files")
    elif probe.methods:
        _say(f"the probe scores {', '.join(probe.methods)} (--probe-methods all: every method)")
    defs = make_definitions(build_resources(storage, probe=probe))
    instance = dg.DagsterInstance.from_config(str(home))
    raw = storage.raw_path
    started = time.perf_counter()
    ended = end_dead_runs(instance)
    if ended:
        _say(
            f"ended {len(ended)} run(s) a killed process left unfinished or holding pool slots: "
            + "; ".join(e.describe() for e in ended)
        )
    log = RunLog(storage.root / "logs" / f"ubp-run-{time.strftime('%Y%m%d-%H%M%S')}.log", _say)
    _say(f"every event of the runs, DEBUG included, goes to {log.path}")
    try:
        _run_jobs(
            instance,
            defs,
            log,
            raw=raw,
            scale=scale,
            seed=seed,
            keys=event_days.get_partition_keys(),
            methods=probe.methods,
            scoring=scoring,
        )
    except RunInterrupted:
        # The run is canceled and recorded; a native thread pool (DuckDB's, polars') the interrupt
        # left mid-task can abort in its destructors at interpreter exit, so leave without them.
        _say(f"the full log: {log.path}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        log.close()
    report = storage.reports_dir / "probe_scores.md"
    if report.exists():
        print(report.read_text().split("## Every term")[0].strip(), flush=True)
    bound = storage.reports_dir / "history_bound.md"
    if bound.exists():
        print("\n" + bound.read_text().strip(), flush=True)
    _say(f"done in {time.perf_counter() - started:.1f}s; data in {storage.root}")
    _say(f"the full log: {log.path}")
    settings = f"DAGSTER_HOME={home} UBP_DATA_DIR={storage.root}"
    if storage.raw_dir:
        settings += f" UBP_RAW_DIR={storage.raw_path}"
    _say(f"inspect it: {settings} dg dev")
    return 0


SCORING = ("probe_scores", "history_bound_scores")


def embedding_assets(defs, methods: list[str], *, scoring: bool = True):
    """The embeddings job's assets that the probe's methods need (every one when `methods` is
    empty): at the full release's size the methods not scored are not built either. Without
    `scoring`, the scores and the history bound are left out."""
    import dagster as dg

    from ubp_assets.defs.automation.jobs import EMBEDDINGS
    from ubp_assets.methods import METHODS

    if not methods and scoring:
        return None
    built = [m.asset for m in METHODS if not methods or m.name in methods]
    needed = (dg.AssetSelection.assets(*built).upstream() & EMBEDDINGS) | dg.AssetSelection.assets(
        "targets", *(SCORING if scoring else ())
    )
    return sorted(needed.resolve(defs.resolve_asset_graph()))


def _run_jobs(
    instance,
    defs,
    log,
    *,
    raw: Path,
    scale: str,
    seed: int,
    keys: list[str],
    methods: list[str],
    scoring: bool = True,
) -> None:
    from ubp_assets.runs import execute_job

    def run(job: str, **kwargs) -> None:
        if not execute_job(instance, defs.resolve_job_def(job), _say, log=log, **kwargs):
            raise SystemExit(f"[ubp] run failed; the full log: {log.path}")

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
        "targets, the baselines, the Optuna study, the autoencoder, embeddings"
        + (", probe scores, the history bound" if scoring else "")
    )
    selection = embedding_assets(defs, methods, scoring=scoring)
    if selection is not None:
        names = ", ".join(k.to_user_string() for k in selection)
        _say(f"built for the probe's methods only: {names}" if methods else f"built: {names}")
    run("embeddings_job", asset_selection=selection)


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


def _relevant_clients(storage):
    import numpy as np

    path = storage.relevant_clients_path
    if not path.is_file():
        raise SystemExit(
            f"[ubp] no relevant clients at {path}: point --raw-dir at the release, or run "
            "`ubp run` first"
        )
    return np.load(path).astype(np.int64)


def validate_main(folder: str, data_dir: str | None, raw_dir: str | None) -> int:
    """`ubp validate DIR`: every broken rule of the organisers', one line each; exit 1 if any."""
    from ubp_assets.evaluation.submission import folder_problems

    storage = project_storage(data_dir, raw_dir)
    problems = folder_problems(Path(folder), _relevant_clients(storage))
    for problem in problems:
        print(f"{folder}: {problem}")
    if not problems:
        print(f"{folder}: valid (the relevant clients of {storage.raw_path}, each once)")
    return 1 if problems else 0


def score_main(folder: str, name: str | None, data_dir: str | None, raw_dir: str | None) -> int:
    """`ubp score DIR`: the folder scored by the same probe on the same targets as the last
    `ubp run`'s methods, and added to its table and report (reports/probe_scores.md)."""
    from ubp_assets.evaluation.external import score_beside
    from ubp_assets.evaluation.submission import folder_problems, read_submission
    from ubp_assets.resources import ProbeSettings

    storage = project_storage(data_dir, raw_dir)
    problems = folder_problems(Path(folder), _relevant_clients(storage))
    if problems:
        for problem in problems:
            print(f"{folder}: {problem}")
        raise SystemExit("[ubp] not scored: the folder breaks the rules above")
    method = name or Path(folder).resolve().name
    client_ids, vectors = read_submission(Path(folder))
    settings = ProbeSettings.from_env()
    _say(f"scoring {method} ({vectors.shape[1]} dimensions) with the {settings.profile} probe")
    try:
        table = score_beside(
            storage.target_dir,
            storage.warehouse_dir,
            storage.reports_dir,
            method=method,
            client_ids=client_ids,
            vectors=vectors,
            profile=settings.profile,
            device=settings.device,
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"[ubp] {error}") from None
    print(table)
    _say(f"added to {storage.reports_dir / 'probe_scores.md'}")
    return 0


def slots_main(data_dir: str | None, free: str | None) -> int:
    """`ubp slots`: the pools' holders; dead runs of `ubp run` ended; `--free` frees one run."""
    home = dagster_home(data_path(data_dir))
    import dagster as dg

    from ubp_assets.runs import end_dead_runs, slot_holders

    with dg.DagsterInstance.from_config(str(home)) as instance:
        if free:
            run = instance.get_run_by_id(free)
            if run is None:
                raise SystemExit(f"[ubp] no run {free} in {home}")
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


def resume_main(run_id: str, data_dir: str | None) -> int:
    """`ubp resume RUN_ID`: the run's failed and unrun steps, in a new run of the instance."""
    home = dagster_home(data_path(data_dir))
    import dagster as dg

    from ubp_assets.runs import resume_failed_run

    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            run = resume_failed_run(instance, run_id)
        except ValueError as exc:
            raise SystemExit(f"[ubp] {exc}") from None
    status = run.status.value.lower()
    _say(f"run {run.run_id} re-executed {run_id} from its failure: {status}")
    return 0 if run.status == dg.DagsterRunStatus.SUCCESS else 1


if __name__ == "__main__":
    raise SystemExit(main())
