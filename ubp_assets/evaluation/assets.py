"""Evaluation as assets: the split, the six tasks' targets, the baselines' embeddings and the
probe's scores of every method, exactly as the RecSys Challenge 2025 organisers scored them."""

import datetime as dt
import time

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ubp_assets.evaluation.baseline import BASELINE_DIM, aggregated_baseline
from ubp_assets.evaluation.history_bound import (
    BoundConfig,
    bound_embedding,
    history_bound,
    history_shares,
    population_chunks,
    population_size,
    training_rows,
)
from ubp_assets.evaluation.oracle import Windows, gap_closed, oracle_embedding
from ubp_assets.evaluation.split import ChallengeSplit, split_from_event_days
from ubp_assets.evaluation.submission import (
    read_submission,
    submission_problems,
    write_submission,
)
from ubp_assets.evaluation.targets import (
    TASKS,
    Targets,
    build_targets,
    labels,
    target_summary,
    task_clients,
)
from ubp_assets.events.assets import events
from ubp_assets.events.table import scan_events
from ubp_assets.features.assets import MATRIX_TABLE, feature_matrix, load_relevant_clients
from ubp_assets.metadata import column_schema, markdown_table, png_markdown
from ubp_assets.raw.assets import RAW_FILENAMES, RAW_KEYS, synthetic_truth
from ubp_assets.resources import WAREHOUSE_POOL, ProbeSettings, UbpStorage
from ubp_assets.synthetic.release import MANIFEST, TRUTH_FILE
from ubp_assets.synthetic.scales import get_scale
from ubp_assets.warehouse import read_table, write_table

# Embedding methods the probe scores, in the report's order; each is an asset that writes
# <data>/embeddings/<method>/ in the submission format. Later stages add theirs by name.
# (Evaluation imports nothing of the model: its assets are named here by key.)
SCORED_METHODS: dict[str, str] = {
    "random": "random_embeddings",
    "aggregated_baseline": "aggregated_baseline_embeddings",
    "feature_matrix": "feature_matrix_embeddings",
    "autoencoder_latent": "user_embeddings",
    "autoencoder_latent_features": "user_embeddings",
    "universal": "user_embeddings",
    "oracle": "oracle_embeddings",
}
# Scored where its files exist: the oracle needs the synthetic generator's latent truth.
OPTIONAL_METHODS = {"oracle"}
BASELINE_METHOD = "aggregated_baseline"
CEILING_METHOD = "oracle"
SUBMISSION_CHECK = "submission_format"


@dg.asset(
    deps=[events],
    group_name="evaluation",
    kinds={"polars", "duckdb"},
    code_version="1",
    io_manager_key="warehouse_io",
    pool=WAREHOUSE_POOL,
    description="The RecSys Challenge 2025 time split computed from the events exactly as the "
    "organisers do: end_date is the latest product_buy, train_target_start is midnight of "
    "end_date - 27 days (the input ends there), validation_target_start is 14 days later.",
)
def challenge_split(context: dg.AssetExecutionContext, storage: UbpStorage) -> pl.DataFrame:
    split = split_from_event_days(storage.events_dir)
    context.add_output_metadata({k: v for k, v in split.as_dict().items()})
    return pl.DataFrame(
        {
            "end_date": [split.end_date],
            "train_target_start": [split.train_target_start],
            "validation_target_start": [split.validation_target_start],
        }
    )


def as_split(frame: pl.DataFrame) -> ChallengeSplit:
    row = frame.row(0, named=True)
    return ChallengeSplit(
        row["end_date"], row["train_target_start"], row["validation_target_start"]
    )


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[events, RAW_KEYS["relevant_clients"]],
    group_name="evaluation",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=WAREHOUSE_POOL,  # its input is read from the warehouse
    description="The six tasks' targets in the organisers' `target/` layout: the 100 categories "
    "and 100 SKUs bought most in the train target window, 100 new SKUs (bought there, seen in "
    "no input event) and the 100 price buckets, each with its popularity for novelty; the "
    "active clients; the relevant clients' buys of the train and validation windows (labels "
    "for training and for scoring).",
)
def targets(
    context: dg.AssetExecutionContext, storage: UbpStorage, challenge_split: pl.DataFrame
) -> dg.MaterializeResult:
    relevant = load_relevant_clients(storage)
    built = build_targets(scan_events(storage.events_dir), as_split(challenge_split), relevant)
    built.write(storage.target_dir)
    summary = target_summary(built)
    new_sku_buys = summary.filter(pl.col("task") == "propensity_new_sku")["validation_buys"]
    return dg.MaterializeResult(
        metadata={
            "target_dir": dg.MetadataValue.path(str(storage.target_dir)),
            "active_clients": len(built.active_clients),
            "relevant_clients": len(relevant),
            "train_window_buys": built.train_target.height,
            "validation_window_buys": built.validation_target.height,
            "tasks": dg.MetadataValue.md(
                markdown_table(summary)
                + "\n\nBuys of the task's values by the relevant clients in each window. A "
                "propensity task whose values get only a handful of validation buys scores "
                "noise, whatever the embedding."
            ),
            "new_sku_validation_buys": int(new_sku_buys[0]) if len(new_sku_buys) else 0,
        }
    )


# ---- embeddings of the baselines -----------------------------------------------------------------


def submission_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        SUBMISSION_CHECK,
        asset=asset,
        description="The organisers' rules: client_ids int64, exactly the relevant clients "
        "each once; embeddings float16, 2-D, at most 2048 columns, no NaN or infinity.",
    )


def publish_embeddings(
    storage: UbpStorage,
    method: str,
    client_ids: np.ndarray,
    vectors: np.ndarray,
    seconds: float,
    *,
    metadata: dict | None = None,
):
    """Write a method's submission files, then check the files as written; `metadata` adds to
    what every embedding asset reports."""
    folder = storage.embeddings_dir / method
    write_submission(folder, client_ids, vectors)
    stored_ids, stored = read_submission(folder)
    problems = submission_problems(stored_ids, stored, load_relevant_clients(storage))
    preview = pl.DataFrame(
        {"client_id": stored_ids[:5]}
        | {f"dim_{j}": stored[:5, j].astype(np.float32) for j in range(min(8, stored.shape[1]))}
    )
    yield dg.MaterializeResult(
        metadata={
            "method": method,
            "folder": dg.MetadataValue.path(str(folder)),
            "clients": len(stored_ids),
            "dimensions": stored.shape[1],
            "build_seconds": round(seconds, 2),
            "size_mib": round(stored.nbytes / 2**20, 2),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
            **(metadata or {}),
        }
    )
    yield dg.AssetCheckResult(
        check_name=SUBMISSION_CHECK,
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none"},
    )


class RandomEmbeddingsConfig(dg.Config):
    dimensions: int = Field(default=64, description="width of the Gaussian vectors")
    seed: int = Field(default=0)


@dg.asset(
    deps=[RAW_KEYS["relevant_clients"]],
    group_name="baselines",
    kinds={"numpy"},
    code_version="1",
    check_specs=[submission_check_spec("random_embeddings")],
    description="Gaussian noise per relevant client: the sanity floor. The probe sees the same "
    "clients in training and scoring, so a large probe can memorise even these (PROTOCOL.md).",
)
def random_embeddings(storage: UbpStorage, config: RandomEmbeddingsConfig):
    started = time.perf_counter()
    relevant = load_relevant_clients(storage)
    vectors = np.random.default_rng(config.seed).standard_normal((len(relevant), config.dimensions))
    yield from publish_embeddings(
        storage, "random", relevant, vectors, time.perf_counter() - started
    )


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[events, RAW_KEYS["relevant_clients"]],
    group_name="baselines",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=WAREHOUSE_POOL,  # its input is read from the warehouse
    check_specs=[submission_check_spec("aggregated_baseline_embeddings")],
    description=f"The organisers' aggregated-features baseline ({BASELINE_DIM} dimensions) from "
    "the input (events before train_target_start): counts of the 10 most frequent SKUs, "
    "categories and price buckets over the last 1, 7 and 30 days for buys, cart adds and "
    "removals, the same over urls for page visits, the mean query vector for searches.",
)
def aggregated_baseline_embeddings(storage: UbpStorage, challenge_split: pl.DataFrame):
    started = time.perf_counter()
    relevant = load_relevant_clients(storage)
    split = as_split(challenge_split)
    vectors = aggregated_baseline(
        scan_events(storage.events_dir), relevant, split.train_target_start
    )
    yield from publish_embeddings(
        storage, "aggregated_baseline", relevant, vectors, time.perf_counter() - started
    )


@dg.asset(
    deps=[feature_matrix],
    group_name="baselines",
    kinds={"duckdb", "numpy"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    check_specs=[submission_check_spec("feature_matrix_embeddings")],
    description="The scaled feature matrix itself as an embedding: what the seed paper's "
    "autoencoder has to compress without losing.",
)
def feature_matrix_embeddings(storage: UbpStorage, warehouse: DuckDBResource):
    started = time.perf_counter()
    matrix = read_table(warehouse, MATRIX_TABLE)
    yield from publish_embeddings(
        storage,
        "feature_matrix",
        matrix["client_id"].to_numpy(),
        matrix.drop("client_id").to_numpy(),
        time.perf_counter() - started,
    )


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[targets, synthetic_truth, RAW_KEYS["relevant_clients"], RAW_KEYS["product_properties"]],
    group_name="baselines",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=WAREHOUSE_POOL,  # its input is read from the warehouse
    description="The ceiling on synthetic data: each relevant client's latent truth as the "
    "generator drew it, turned into what the tasks ask (expected sessions and buys per window, "
    "the chance of buying each target category, SKU and price bucket). On the real release "
    "there is no truth and no oracle; the probe report then leaves the gap columns empty.",
)
def oracle_embeddings(
    context: dg.AssetExecutionContext, storage: UbpStorage, challenge_split: pl.DataFrame
) -> dg.MaterializeResult:
    import json
    import shutil

    folder = storage.embeddings_dir / CEILING_METHOD
    truth_path = storage.raw_path / TRUTH_FILE
    manifest_path = storage.raw_path / MANIFEST
    if not truth_path.is_file() or not manifest_path.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        context.log.info(f"no latent truth at {truth_path}: not a synthetic release, no oracle")
        return dg.MaterializeResult(metadata={"available": False, "truth": str(truth_path)})
    started = time.perf_counter()
    manifest = json.loads(manifest_path.read_text())
    first_day = dt.date.fromisoformat(manifest["first_day"])
    last_day = dt.date.fromisoformat(manifest["last_day"])
    split = as_split(challenge_split)
    windows = Windows(
        target_start=(split.train_target_start.date() - first_day).days,
        days=(last_day - first_day).days + 1,
    )
    relevant = load_relevant_clients(storage)
    vectors = oracle_embedding(
        pl.read_parquet(truth_path),
        relevant,
        pl.read_parquet(storage.raw_path / RAW_FILENAMES["product_properties"]),
        Targets.read(storage.target_dir).values,
        windows,
    )
    seconds = time.perf_counter() - started
    write_submission(folder, relevant, vectors)
    return dg.MaterializeResult(
        metadata={
            "available": True,
            "folder": dg.MetadataValue.path(str(folder)),
            "truth": dg.MetadataValue.path(str(truth_path)),
            "clients": len(relevant),
            "dimensions": vectors.shape[1],
            "target_start_day": windows.target_start,
            "build_seconds": round(seconds, 2),
        }
    )


# ---- the probe's scores --------------------------------------------------------------------------

SCORES_TABLE = "probe_scores"


def score_method(
    client_ids: np.ndarray,
    vectors: np.ndarray,
    found: Targets,
    profile_name: str,
    device: str,
    *,
    tasks: tuple[str, ...] = tuple(TASKS),
) -> list[dict]:
    """One row per task: the organisers' probe trained on the train window's labels and scored,
    epoch by epoch, on the validation window's; the best epoch's score counts."""
    from ubp_assets.evaluation.metrics import single_class_labels
    from ubp_assets.evaluation.probe import PROFILES, run_probe

    profile = PROFILES[profile_name]
    rows = []
    for task in (TASKS[name] for name in tasks):
        if not task.is_binary and len(found.values[task.name]) == 0:
            continue
        rows_of_task = task_clients(task, client_ids, found)
        ids = client_ids[rows_of_task]
        train = labels(task, ids, found.train_target, found)
        score = labels(task, ids, found.validation_target, found)
        result = run_probe(
            vectors[rows_of_task],
            train,
            score,
            popularity=None if task.is_binary else found.popularity[task.name],
            profile=profile,
            device=device,
        )
        best = result.best
        single = single_class_labels(score)
        two_class = score.shape[1] - single
        rows.append(
            {
                "task": task.name,
                "auroc": best.auroc,
                # single-class labels count 0 in the organisers' macro AUROC; this is the mean
                # over the labels that can be scored, to tell a weak method from thin data
                "auroc_two_class_labels": best.auroc * score.shape[1] / two_class
                if two_class
                else None,
                "diversity": best.diversity,
                "novelty": best.novelty,
                "score": best.score,
                "best_epoch": result.best_epoch + 1,
                "clients": len(ids),
                "single_class_labels": single,
                "seconds": round(result.train_seconds, 2),
            }
        )
    return rows


@dg.asset(
    deps=[targets, *dict.fromkeys(SCORED_METHODS.values())],
    group_name="evaluation",
    kinds={"pytorch", "duckdb"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    description="Every embedding method scored on the six tasks by the organisers' probe "
    "(trained on the train window's labels, scored on the validation window's, best of 3 "
    "epochs): AUROC, diversity, novelty and the task score, with the sum over tasks. A table in "
    "the warehouse and a report with a bar chart under reports/.",
)
def probe_scores(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    probe_settings: ProbeSettings,
) -> dg.MaterializeResult:
    from ubp_assets.evaluation.probe import PROFILES

    if probe_settings.profile not in PROFILES:
        raise dg.Failure(
            description=f"probe profile {probe_settings.profile!r} is not one of {list(PROFILES)}"
        )
    found = Targets.read(storage.target_dir)
    rows = []
    for method, asset_name in SCORED_METHODS.items():
        folder = storage.embeddings_dir / method
        if not folder.is_dir() and method in OPTIONAL_METHODS:
            context.log.info(f"no {method} embeddings (not a synthetic release): not scored")
            continue
        if not folder.is_dir():
            raise dg.Failure(description=f"{folder} is missing: materialize {asset_name} first")
        client_ids, vectors = read_submission(folder)
        context.log.info(f"scoring {method} ({vectors.shape[1]} dimensions) on every task")
        for row in score_method(
            client_ids, vectors, found, probe_settings.profile, probe_settings.device
        ):
            rows.append({"method": method, "dimensions": vectors.shape[1], **row})
            context.log.info(f"  {method} {row['task']}: {row['score']:.4f}")
    scores = with_sums(pl.DataFrame(rows))
    scores = gap_closed(scores, BASELINE_METHOD, CEILING_METHOD).with_columns(
        pl.lit(probe_settings.profile).alias("profile"),
        pl.lit(probe_settings.device).alias("device"),
        pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("scored_at"),
    )
    write_table(warehouse, SCORES_TABLE, scores)
    report = write_report(storage, scores)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.height,
            "dagster/column_schema": column_schema(scores.schema),
            "profile": probe_settings.profile,
            "device": probe_settings.device,
            "scores": dg.MetadataValue.md(score_table(scores)),
            "gap_closed": dg.MetadataValue.md(gap_table(scores)),
            "chart": dg.MetadataValue.md(report),
            "report": dg.MetadataValue.path(str(storage.reports_dir / "probe_scores.md")),
        }
    )


BOUND_METHOD = "history_bound"
BOUND_TABLE = "history_bound_scores"
BOUND_TASKS = ("churn", "conversion")
TARGET_SHARE = 0.85  # the project's quality target: this share of the baseline-to-oracle gap


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[probe_scores, events, targets, RAW_KEYS["product_properties"]],
    group_name="evaluation",
    kinds={"pytorch", "duckdb"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    description="How much of the baseline-to-oracle gap on churn and conversion the input "
    "history can close at all (synthetic releases only). A network learns, on a fresh "
    "population of the release's generator (20 times its clients, at most 800,000), each "
    "client's buys in both target windows from their history, with the true outcomes as "
    "labels; applied to the relevant clients' history and probed like every method, it is the "
    "history's ceiling. The table gives each method's share of it.",
)
def history_bound_scores(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    probe_settings: ProbeSettings,
    challenge_split: pl.DataFrame,
) -> dg.MaterializeResult:
    import json

    manifest_path = storage.raw_path / MANIFEST
    if not manifest_path.is_file():
        with warehouse.get_connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {BOUND_TABLE}")
        context.log.info(f"no {manifest_path}: not a synthetic release, no generator to draw from")
        return dg.MaterializeResult(metadata={"available": False})
    manifest = json.loads(manifest_path.read_text())
    try:
        scale = get_scale(manifest["scale"])
    except ValueError as error:
        raise dg.Failure(description=f"{manifest_path}: {error}") from None
    started = time.perf_counter()
    cutoff = as_split(challenge_split).train_target_start
    clients = population_size(scale)
    context.log.info(f"drawing {clients:,} fresh clients of the {scale.name} generator")
    x, y = training_rows(population_chunks(scale, manifest["seed"], clients), cutoff)
    relevant = load_relevant_clients(storage)
    bound = history_bound(
        x,
        y,
        evaluated=scan_events(storage.events_dir),
        client_ids=relevant,
        cutoff=cutoff,
        config=BoundConfig(device=probe_settings.device),
    )
    context.log.info(
        f"trained on {bound.training_rows:,} clients with history; best held-out loss "
        f"{bound.held_out_loss:.4f} at epoch {bound.best_epoch}"
    )
    found = Targets.read(storage.target_dir)
    vectors = bound_embedding(bound.logits)
    rows = score_method(
        relevant, vectors, found, probe_settings.profile, probe_settings.device, tasks=BOUND_TASKS
    )
    scores = read_table(warehouse, SCORES_TABLE)
    own = pl.DataFrame(rows).select(pl.lit(BOUND_METHOD).alias("method"), "task", "score")
    own = gap_closed(
        pl.concat([scores.select("method", "task", "score"), own]), BASELINE_METHOD, CEILING_METHOD
    ).filter(pl.col("method") == BOUND_METHOD)
    table = history_shares(scores, own, BASELINE_METHOD)
    seconds = time.perf_counter() - started
    write_table(warehouse, BOUND_TABLE, table)
    text = bound_tables(table)
    chart = png_markdown(_bound_chart(table), storage.reports_dir / "history_bound.png")
    (storage.reports_dir / "history_bound.md").write_text(
        f"# What the history can show ({probe_settings.profile} probe)\n\n{text}\n\n"
        "![history bound](history_bound.png)\n"
    )
    return dg.MaterializeResult(
        metadata={
            "available": True,
            "dagster/row_count": table.height,
            "dagster/column_schema": column_schema(table.schema),
            "population_clients": clients,
            "training_rows": bound.training_rows,
            "held_out_loss": round(bound.held_out_loss, 5),
            "best_epoch": bound.best_epoch,
            "positive_rates": bound.positive_rates,
            "shares": dg.MetadataValue.md(text),
            "chart": dg.MetadataValue.md(chart),
            "report": dg.MetadataValue.path(str(storage.reports_dir / "history_bound.md")),
            "build_seconds": round(seconds, 1),
        }
    )


def bound_tables(table: pl.DataFrame) -> str:
    """Scores, the share of the baseline-to-oracle gap, and the share of the history's own."""
    parts = []
    for values, title in (
        ("score", "Validation-window scores"),
        ("gap_closed", "Share of the baseline-to-oracle gap closed"),
        ("history_share", "Share of the baseline-to-history-bound gap closed"),
    ):
        wide = table.pivot(on="task", index="method", values=values).select(
            "method", *[t for t in BOUND_TASKS if t in set(table["task"])]
        )
        parts.append(f"{title}:\n\n{markdown_table(wide, max_rows=50)}")
    return "\n\n".join(parts) + (
        f"\n\n{BOUND_METHOD}: a network trained on fresh clients of the same generator to "
        "predict buys in both target windows from the history alone (true outcomes as labels), "
        "applied to the relevant clients' history. No embedding built from the history is "
        "expected to score above it by more than noise."
    )


def _bound_chart(table: pl.DataFrame):
    """Each method's score on the bound's tasks against the two ceilings, the history's and the
    oracle's: the distance between them is what no history-built embedding can close."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in BOUND_TASKS if t in set(table["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = table.filter(pl.col("task") == task)
        others = rows.filter(~pl.col("method").is_in([BOUND_METHOD, CEILING_METHOD]))
        ax.barh(others["method"].to_list(), others["score"].to_list(), color="tab:blue")
        lines = {
            m: rows.filter(pl.col("method") == m)["score"]
            for m in (BASELINE_METHOD, BOUND_METHOD, CEILING_METHOD)
        }
        for method, colour in ((BOUND_METHOD, "tab:orange"), (CEILING_METHOD, "tab:red")):
            if lines[method].len():
                score = lines[method][0]
                ax.axvline(score, color=colour, linestyle="--", label=f"{method} {score:.3f}")
        if lines[BASELINE_METHOD].len() and lines[CEILING_METHOD].len():
            low, high = lines[BASELINE_METHOD][0], lines[CEILING_METHOD][0]
            target = low + TARGET_SHARE * (high - low)
            label = f"{TARGET_SHARE:.0%} of the oracle's gap {target:.3f}"
            ax.axvline(target, color="tab:green", linestyle=":", label=label)
        ax.set_xlim(0.5, 1.0)
        ax.set_title(f"{task} (validation window)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def with_sums(scores: pl.DataFrame) -> pl.DataFrame:
    return scores.with_columns(pl.col("score").sum().over("method").alias("sum_over_tasks"))


def score_table(scores: pl.DataFrame, values: str = "score", total: str = "sum_over_tasks") -> str:
    """Methods as rows, tasks as columns, the total last: the shape of the challenge's tables."""
    order = [t for t in TASKS if t in set(scores["task"])]
    wide = (
        scores.pivot(on="task", index="method", values=values)
        .select("method", *order)
        .join(scores.select("method", total).unique(), on="method")
        .join(
            pl.DataFrame({"method": scores["method"].unique(maintain_order=True)}).with_row_index(),
            on="method",
        )
        .sort("index")
        .drop("index")
        .rename({total: "sum" if total == "sum_over_tasks" else "total"})
    )
    return markdown_table(wide, max_rows=50)


def gap_table(scores: pl.DataFrame) -> str:
    """The share of the baseline-to-oracle gap each method closes, per task and in total."""
    if scores["gap_closed_total"].is_null().all():
        return "No oracle in this run (not a synthetic release): no gap to measure."
    return (
        score_table(scores, "gap_closed", "gap_closed_total")
        + f"\n\n(method - {BASELINE_METHOD}) / ({CEILING_METHOD} - {BASELINE_METHOD}) on each "
        "task's score; the total uses the sums over tasks. Empty where the oracle does not beat "
        "the baseline, as on a task whose validation labels are too thin to rank anything."
    )


def write_report(storage: UbpStorage, scores: pl.DataFrame) -> str:
    """reports/probe_scores.md with the table and reports/probe_scores.png; returns the chart's
    markdown for the UI."""
    chart = png_markdown(_score_chart(scores), storage.reports_dir / "probe_scores.png")
    profile = scores["profile"][0]
    detail = scores.select(
        "method",
        "task",
        "auroc",
        "diversity",
        "novelty",
        "score",
        "gap_closed",
        "best_epoch",
        "clients",
    )
    text = (
        f"# Probe scores ({profile} probe, device {scores['device'][0]})\n\n"
        "Validation-window scores, the organisers' protocol (PROTOCOL.md).\n\n"
        f"{score_table(scores)}\n\n## Share of the baseline-to-oracle gap closed\n\n"
        f"{gap_table(scores)}\n\n## Every term\n\n{markdown_table(detail, max_rows=200)}\n\n"
        "![probe scores](probe_scores.png)\n"
    )
    (storage.reports_dir / "probe_scores.md").write_text(text)
    return chart


def _score_chart(scores: pl.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in set(scores["task"])]
    methods = scores["method"].unique(maintain_order=True).to_list()
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(tasks)), 4))
    for i, method in enumerate(methods):
        of_method = scores.filter(pl.col("method") == method)
        by_task = dict(zip(of_method["task"], of_method["score"], strict=True))
        ax.bar(
            [t + i * width for t in range(len(tasks))],
            [by_task.get(t, 0.0) for t in tasks],
            width,
            label=method,
        )
    ax.set_xticks([t + width * (len(methods) - 1) / 2 for t in range(len(tasks))])
    ax.set_xticklabels(tasks, fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("score (validation window)")
    ax.set_title(f"Probe scores by task ({scores['profile'][0]} probe)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
