"""Benchmarks that print figures; speed and memory goals live here, never in timed tests.

Each figure comes with a reference measured in the same run, so that a ratio means the same on a
laptop and on a CI machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _child_peak(code: str, env: dict[str, str] | None = None) -> tuple[dict, float, int]:
    """Run code in a fresh interpreter; its printed JSON, wall seconds and peak RSS in bytes."""
    wrapper = (
        "import json, resource, sys\n"
        f"{code}\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'result': result, 'peak': peak}))\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
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


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants (a run's step processes included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    page, total, todo = os.sysconf("SC_PAGE_SIZE"), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * page
        except OSError:
            pass  # ended between the listing and the read
        todo += children.get(pid, [])
    return total


class RssSampler:
    """Resident memory every `every` seconds, in a thread: of this process (the in-process
    executor runs every step here) or of `root` and its descendants. With the steps' start and
    end times from the run's event log it gives each stage's own peak, which one peak of the
    whole process (`ru_maxrss`) cannot."""

    def __init__(self, every: float = 0.1, root: int | None = None) -> None:
        self.every, self.root, self.samples = every, root, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as statm:
            while not self._stop.is_set():
                if self.root is None:
                    statm.seek(0)
                    rss = int(statm.read().split()[1]) * page
                else:
                    rss = tree_rss(self.root)
                self.samples.append((time.time(), rss))
                self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


STAGES = {
    "events": "events_step",
    "daily_partials": "partial_steps",
    "feature_matrix": "matrix_step",
}


def step_seconds_by_stage(instance, run_id: str, sampler: RssSampler | None = None) -> dict:
    """Seconds (and, with a sampler, peak GiB) of a run's steps by stage: the events step, the
    daily partials' step, the split with the families' folds, the matrix; from the timestamps of
    the run's step events."""
    import dagster as dg

    started: dict[str, float] = {}
    stages = {"events_step": 0.0, "partial_steps": 0.0, "fold_steps": 0.0, "matrix_step": 0.0}
    peaks = dict.fromkeys(stages, 0)
    for record in instance.all_logs(run_id):
        if record.dagster_event_type == dg.DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif record.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS:
            key = record.step_key
            stage = STAGES.get(key, "fold_steps")
            stages[stage] += record.timestamp - started[key]
            if sampler is not None:
                peak = sampler.peak_between(started[key], record.timestamp)
                peaks[stage] = max(peaks[stage], peak)
    if sampler is not None:
        stages.update({f"{k}_peak_gib": round(v / 2**30, 2) for k, v in peaks.items()})
    return stages


def update_job():
    """`update_job` resolved, for `dagster.reconstructable`."""
    from ubp_assets.definitions import load_stage_definitions

    return load_stage_definitions().resolve_job_def("update_job")


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the day partitions first..last, as a backfill launches it."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def run_update(first: str, last: str) -> dict:
    """Take in the days first..last as the nightly schedule does: one run of `update_job` (their
    partitions, then the split, the folds and the feature matrix) with the job's own executor,
    through the instance in DAGSTER_HOME."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    with (
        RssSampler() as sampler,
        dg.execute_job(
            dg.reconstructable(update_job),
            instance=instance,
            tags=range_tags(first, last),
        ) as result,
    ):
        assert result.success
    return {
        "run_seconds": time.perf_counter() - started,
        **step_seconds_by_stage(instance, result.run_id, sampler),
    }


def bench_features(scale: str = "tenth", seed: int = 2025) -> dict:
    """raw -> feature_matrix at a scale: events per second, peak memory, the ratio to one plain
    polars scan of the same raw files, and the cost of one new day against a full rebuild."""
    import polars as pl

    from ubp_assets.instance import write_instance_yaml
    from ubp_assets.synthetic import get_scale, write_release
    from ubp_assets.synthetic.generator import EVENT_FILES

    spec = get_scale(scale)
    figures: dict = {"scale": scale}
    with tempfile.TemporaryDirectory() as tmp:
        raw = f"{tmp}/raw"
        started = time.perf_counter()
        summary = write_release(spec, seed, raw)
        figures["generate_seconds"] = round(time.perf_counter() - started, 1)
        figures["events"] = summary.n_events

        started = time.perf_counter()
        for name in (*EVENT_FILES, "product_properties"):
            pl.read_parquet(f"{raw}/{name}.parquet")
        figures["plain_scan_seconds"] = round(time.perf_counter() - started, 2)

        write_instance_yaml(Path(tmp) / "home")
        env = {"UBP_DATA_DIR": f"{tmp}/data", "UBP_RAW_DIR": raw, "DAGSTER_HOME": f"{tmp}/home"}
        first, last = str(spec.first_day), str(spec.last_day)
        full, full_seconds, peak = _child_peak(
            f"from ubp_assets.benchmarks import run_update\n"
            f"result = run_update({first!r}, {last!r})\n",
            env,
        )
        figures["full_seconds"] = round(full_seconds, 1)
        figures["full_stages"] = {k: round(v, 1) for k, v in full.items()}
        figures["peak_rss_gib"] = round(peak / 2**30, 2)
        figures["events_per_second"] = round(summary.n_events / full_seconds)
        figures["ratio_to_plain_scan"] = round(full_seconds / figures["plain_scan_seconds"], 1)

        new_day, new_day_seconds, _ = _child_peak(
            f"from ubp_assets.benchmarks import run_update\n"
            f"result = run_update({last!r}, {last!r})\n",
            env,
        )
        figures["new_day_seconds"] = round(new_day_seconds, 1)
        figures["new_day_stages"] = {k: round(v, 1) for k, v in new_day.items()}
        figures["new_day_share"] = round(new_day_seconds / full_seconds, 3)

        # With the cutoff after the new day (final embeddings), every fold must take it in.
        new_day_all, new_day_all_seconds, _ = _child_peak(
            f"from ubp_assets.benchmarks import run_update\n"
            f"result = run_update({last!r}, {last!r})\n",
            {**env, "UBP_FEATURE_CUTOFF": "all"},
        )
        figures["new_day_all_seconds"] = round(new_day_all_seconds, 1)
        figures["new_day_all_stages"] = {k: round(v, 1) for k, v in new_day_all.items()}
        figures["new_day_all_share"] = round(new_day_all_seconds / full_seconds, 3)
    return figures


def print_features(figures: dict) -> None:
    print(
        f"scale {figures['scale']}: {figures['events']:,} events "
        f"(generated in {figures['generate_seconds']}s)"
    )
    print(
        f"raw -> feature_matrix: {figures['full_seconds']}s "
        f"({figures['events_per_second']:,} events/s), peak {figures['peak_rss_gib']} GiB; "
        f"stages {figures['full_stages']}"
    )
    print(
        f"one plain polars read of the same raw files: {figures['plain_scan_seconds']}s; "
        f"pipeline / plain read = {figures['ratio_to_plain_scan']}x"
    )
    print(
        f"one new day (one run: its partitions, the folds, the matrix): "
        f"{figures['new_day_seconds']}s "
        f"= {figures['new_day_share']:.1%} of the full build; stages {figures['new_day_stages']}"
    )
    print(
        f"one new day with UBP_FEATURE_CUTOFF=all (the folds take the day in): "
        f"{figures['new_day_all_seconds']}s = {figures['new_day_all_share']:.1%} of the full "
        f"build; stages {figures['new_day_all_stages']}"
    )


def bench_model(scale: str = "demo", seed: int = 2025, trials: int = 3) -> dict:
    """The autoencoder's training throughput against a plain reconstruction-only step of the same
    network (the cost of the paper's two noisy views and InfoNCE), and the study's time per
    trial, on a feature matrix built from a fresh synthetic release."""
    import numpy as np
    import torch

    from ubp_assets.evaluation.split import split_from_events
    from ubp_assets.evaluation.targets import build_targets
    from ubp_assets.events.schema import RELEVANT_CLIENTS
    from ubp_assets.events.table import scan_events
    from ubp_assets.instance import write_instance_yaml
    from ubp_assets.model.autoencoder import ResidualAutoencoder
    from ubp_assets.model.training import TrainConfig, train_autoencoder
    from ubp_assets.model.tuning import make_objective, open_study, tuning_tasks
    from ubp_assets.synthetic import get_scale, write_release
    from ubp_assets.warehouse import WarehouseDir, read_table

    spec = get_scale(scale)
    figures: dict = {"scale": scale}
    with tempfile.TemporaryDirectory() as tmp:
        raw = f"{tmp}/raw"
        write_release(spec, seed, raw)
        write_instance_yaml(Path(tmp) / "home")
        env = {"UBP_DATA_DIR": f"{tmp}/data", "UBP_RAW_DIR": raw, "DAGSTER_HOME": f"{tmp}/home"}
        _child_peak(
            f"from ubp_assets.benchmarks import run_update\n"
            f"result = run_update({str(spec.first_day)!r}, {str(spec.last_day)!r})\n",
            env,
        )
        matrix = read_table(WarehouseDir(Path(tmp) / "data" / "warehouse"), "feature_matrix")
        client_ids = matrix["client_id"].to_numpy()
        features = matrix.drop("client_id").to_numpy()
        figures["clients"], figures["features"] = features.shape

        config = TrainConfig(epochs=3, patience=3)
        trained = train_autoencoder(features, config)
        figures["train_samples_per_second"] = round(trained.samples_per_second)
        figures["parameters"] = trained.parameter_count

        # Reference: one clean view, MSE only, same network, batch size and optimiser.
        torch.manual_seed(0)
        model = ResidualAutoencoder(features.shape[1], config.latent_dim)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
        x_all = torch.from_numpy(features)
        started = time.perf_counter()
        for lo in range(0, len(x_all) - config.batch_size, config.batch_size):
            x = x_all[lo : lo + config.batch_size]
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x)[0], x)
            loss.backward()
            optimiser.step()
        plain = (len(x_all) - config.batch_size) / (time.perf_counter() - started)
        figures["plain_samples_per_second"] = round(plain)
        figures["ratio_to_plain"] = round(plain / trained.samples_per_second, 2)

        events = scan_events(f"{tmp}/data/warehouse/events")
        found = build_targets(
            events, split_from_events(events), np.load(Path(raw) / RELEVANT_CLIENTS)
        )
        tasks = tuning_tasks(client_ids, found)
        study = open_study(f"sqlite:///{tmp}/study.db", seed=0)
        base = TrainConfig(epochs=6, patience=3)
        started = time.perf_counter()
        study.optimize(make_objective(features, tasks, base, log=lambda _: None), n_trials=trials)
        figures["trials"] = trials
        figures["seconds_per_trial"] = round((time.perf_counter() - started) / trials, 1)
        figures["trial_states"] = [t.state.name.lower() for t in study.trials]
    return figures


def print_model(figures: dict) -> None:
    print(
        f"scale {figures['scale']}: {figures['clients']:,} clients x {figures['features']} "
        f"features; autoencoder of {figures['parameters']:,} parameters"
    )
    print(
        f"training (two noisy views, MSE + InfoNCE + L2): "
        f"{figures['train_samples_per_second']:,} samples/s; a plain one-view MSE step of the "
        f"same network: {figures['plain_samples_per_second']:,} samples/s "
        f"(plain / paper = {figures['ratio_to_plain']}x)"
    )
    print(
        f"study: {figures['seconds_per_trial']}s per trial over {figures['trials']} trials "
        f"of 6 epochs each, fast probe included ({', '.join(figures['trial_states'])})"
    )


def step_spans(home: Path) -> dict[str, tuple[float, float]]:
    """Every finished step of every run of the instance in `home`: (start, end) timestamps."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    ends = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
    spans: dict[str, tuple[float, float]] = {}
    for run in reversed(instance.get_runs()):  # oldest first: a later run's step wins
        started: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            if record.dagster_event_type == dg.DagsterEventType.STEP_START:
                started[record.step_key] = record.timestamp
            elif record.dagster_event_type in ends and record.step_key in started:
                spans[record.step_key] = (started[record.step_key], record.timestamp)
    return spans


def run_figures(spans: dict[str, tuple[float, float]], sampler: RssSampler) -> dict:
    """Each step's seconds and peak, and the two spans the targets name, from the events step's
    start: raw -> feature_matrix and raw -> user_embeddings, each with its seconds and peak."""
    gib = 2**30
    steps = {
        key: {
            "seconds": round(end - start, 1),
            "peak_gib": round(sampler.peak_between(start, end) / gib, 2),
        }
        for key, (start, end) in sorted(spans.items(), key=lambda item: item[1][0])
    }
    first = spans["events"][0]
    figures: dict = {"steps": steps}
    for name, last in (
        ("raw_to_feature_matrix", "feature_matrix"),
        ("raw_to_user_embeddings", "user_embeddings"),
    ):
        end = spans[last][1]
        figures[name] = {
            "seconds": round(end - first, 1),
            "peak_gib": round(sampler.peak_between(first, end) / gib, 2),
        }
    figures["peak_gib"] = round(max((r for _, r in sampler.samples), default=0) / gib, 2)
    return figures


def bench_scale(scale: str = "full", reference: str = "quarter", seed: int = 2025) -> dict:
    """`ubp run --no-scoring` end to end (to the submission files; the probe is measured on its
    own) at `reference` and at `scale`, one after the other, each on a fresh data directory:
    every step's time and the peak resident memory of the whole process tree (a step process of
    the multiprocess executor included), sampled every second; then one new day as the nightly
    schedule takes it in (`run_update` of the last day), against raw -> feature_matrix."""
    from ubp_assets.synthetic import get_scale

    figures: dict = {"scale": scale, "reference": reference}
    for name in dict.fromkeys((reference, scale)):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "UBP_RAW_DIR")}
            command = [
                sys.executable,
                "-m",
                "ubp_assets.cli",
                "run",
                "--scale",
                name,
                "--no-scoring",
            ]
            started = time.time()
            with open(f"{tmp}/output.txt", "w") as output:
                child = subprocess.Popen(
                    [*command, "--seed", str(seed)],
                    env={**env, "UBP_DATA_DIR": f"{tmp}/data"},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
                with RssSampler(every=1.0, root=child.pid) as sampler:
                    code = child.wait()
            if code:
                tail = Path(f"{tmp}/output.txt").read_text()[-3000:]
                raise RuntimeError(f"ubp run --scale {name} exited {code}:\n{tail}")
            figures[name] = {
                "wall_seconds": round(time.time() - started, 1),
                **run_figures(step_spans(Path(f"{tmp}/data/dagster_home")), sampler),
            }
            last = str(get_scale(name).last_day)
            _, seconds, peak = _child_peak(
                f"from ubp_assets.benchmarks import run_update\n"
                f"result = run_update({last!r}, {last!r})\n",
                {"UBP_DATA_DIR": f"{tmp}/data", "DAGSTER_HOME": f"{tmp}/data/dagster_home"},
            )
            matrix_seconds = figures[name]["raw_to_feature_matrix"]["seconds"]
            figures[name]["new_day"] = {
                "seconds": round(seconds, 1),
                "peak_gib": round(peak / 2**30, 2),
                "share": round(seconds / max(matrix_seconds, 1e-9), 4),
            }
    big, small = figures[scale], figures[reference]
    for span in ("raw_to_feature_matrix", "raw_to_user_embeddings"):
        figures[f"{span}_peak_ratio"] = round(
            big[span]["peak_gib"] / max(small[span]["peak_gib"], 1e-9), 2
        )
        figures[f"{span}_time_ratio"] = round(
            big[span]["seconds"] / max(small[span]["seconds"], 1e-9), 2
        )
    return figures


def print_scale(figures: dict) -> None:
    scale, reference = figures["scale"], figures["reference"]
    names = list(dict.fromkeys((reference, scale)))
    steps = list(dict.fromkeys(k for n in names for k in figures[n]["steps"]))
    print(f"{'step':<34}" + "".join(f"{n + ' s':>12}{n + ' GiB':>12}" for n in names))
    for key in steps:
        cells = [figures[n]["steps"].get(key, {}) for n in names]
        print(
            f"{key:<34}"
            + "".join(f"{c.get('seconds', '-'):>12}{c.get('peak_gib', '-'):>12}" for c in cells)
        )
    for n in names:
        f = figures[n]
        matrix, embeddings = f["raw_to_feature_matrix"], f["raw_to_user_embeddings"]
        print(
            f"{n}: raw -> feature_matrix {matrix['seconds']}s, peak {matrix['peak_gib']} GiB; "
            f"raw -> user_embeddings {embeddings['seconds']}s, peak "
            f"{embeddings['peak_gib']} GiB; whole run {f['wall_seconds']}s, "
            f"peak {f['peak_gib']} GiB"
        )
        day = f["new_day"]
        print(
            f"{n}: one new day (one run of update_job) {day['seconds']}s = "
            f"{100 * day['share']:.1f}% of raw -> feature_matrix, peak {day['peak_gib']} GiB"
        )
    if len(names) == 2:
        for span in ("raw_to_feature_matrix", "raw_to_user_embeddings"):
            print(
                f"{span}: {scale} / {reference} peak {figures[span + '_peak_ratio']}x, "
                f"time {figures[span + '_time_ratio']}x"
            )


def _timed_backfill(env: dict[str, str], first: str, last: str) -> float:
    """Wall seconds of one `dagster job execute` of `daily_job` over first..last, as a backfill
    of those days launches it."""
    tags = range_tags(first, last)
    command = [Path(sys.executable).parent / "dagster", "job", "execute"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "-m", "ubp_assets.definitions", "-j", "daily_job", "--tags", json.dumps(tags)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the backfill exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def bench_workers(
    scale: str = "demo", workers: int = 2, seed: int = 2025, days: int | None = None
) -> dict:
    """A backfill of every day (`daily_job`, one run) launched with `dagster job execute`, four
    ways, each on a fresh data directory and instance: Dagster's default executor with a local
    SQLite instance (the reference), the same executor with the instance on Postgres, and the
    celery executor with `workers` workers (one pool process each) and the instance on Postgres,
    with the data in a local folder and on the S3 server. Wall seconds of each and their ratios
    to the reference; the workers' start is apart. `days` limits the backfill to the scale's
    first days (default: every day). Needs the servers `.ci/start-postgres`, `.ci/start-redis`
    and `.ci/start-s3` start (UBP_TEST_POSTGRES, UBP_TEST_REDIS, UBP_TEST_S3)."""
    import datetime as dt

    import redis

    from ubp_assets.executors import celery_workers
    from ubp_assets.instance import write_instance_yaml
    from ubp_assets.location import loopback_store_env, scratch_prefix
    from ubp_assets.postgres import DEFAULT_SERVER, scratch_database
    from ubp_assets.synthetic import get_scale, write_release

    chosen = get_scale(scale)
    end = chosen.last_day if days is None else chosen.first_day + dt.timedelta(days=days - 1)
    first, last = str(chosen.first_day), str(min(end, chosen.last_day))
    postgres = os.environ.get("UBP_TEST_POSTGRES", DEFAULT_SERVER)
    broker = os.environ.get("UBP_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/") + "/6"
    redis.Redis.from_url(broker, socket_connect_timeout=5).flushdb()  # no stale task
    store = loopback_store_env(os.environ.get("UBP_TEST_S3", "http://127.0.0.1:5055"), "bench")
    figures: dict = {"scale": scale, "workers": workers, "days": f"{first}..{last}"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(postgres, "ubp_bench") as on_postgres,
        scratch_database(postgres, "ubp_bench") as on_celery,
        scratch_database(postgres, "ubp_bench") as on_s3,
        scratch_prefix("ubp-bench", store) as bucket,
    ):
        root = Path(tmp)
        write_release(chosen, seed, root / "raw")
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "UBP_"))},
            "UBP_RAW_DIR": str(root / "raw"),
        }

        def env_for(name: str, pg: dict[str, str] | None = None, **more: str) -> dict[str, str]:
            home = write_instance_yaml(root / f"home_{name}", postgres=pg is not None).parent
            data = {"UBP_DATA_DIR": str(root / name), "DAGSTER_HOME": str(home)}
            return {**base, **(pg or {}), **data, **more}

        celery = {"UBP_EXECUTOR": "celery", "UBP_CELERY_BROKER": broker}

        figures["sqlite_seconds"] = round(_timed_backfill(env_for("sqlite"), first, last), 1)
        figures["postgres_seconds"] = round(
            _timed_backfill(env_for("postgres", on_postgres), first, last), 1
        )
        names = tuple(f"bench{i + 1}" for i in range(workers))
        for name, env in (
            ("celery", env_for("celery", on_celery, **celery)),
            ("celery_s3", env_for("celery_s3", on_s3, **celery, **store, UBP_DATA_DIR=bucket)),
        ):
            started = time.perf_counter()
            with celery_workers(names, env, root):
                figures["workers_start_seconds"] = round(time.perf_counter() - started, 1)
                figures[f"{name}_seconds"] = round(_timed_backfill(env, first, last), 1)
    for name in ("postgres", "celery", "celery_s3"):
        figures[f"{name}_ratio"] = round(
            figures[f"{name}_seconds"] / max(figures["sqlite_seconds"], 1e-9), 2
        )
    return figures


def print_workers(figures: dict) -> None:
    print(
        f"backfill of daily_job over {figures['days']} ({figures['scale']}), one run each: "
        f"default executor, SQLite instance {figures['sqlite_seconds']}s; default executor, "
        f"Postgres instance {figures['postgres_seconds']}s ({figures['postgres_ratio']}x); "
        f"celery with {figures['workers']} workers, Postgres instance "
        f"{figures['celery_seconds']}s ({figures['celery_ratio']}x), the same with the data on "
        f"the S3 server {figures['celery_s3_seconds']}s ({figures['celery_s3_ratio']}x; the "
        f"workers took {figures['workers_start_seconds']}s to start, not counted)"
    )
