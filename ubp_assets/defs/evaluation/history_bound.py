"""What the input history can show of churn and conversion at all (synthetic releases only)."""

import json
import time

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.history_bound import (
    BoundConfig,
    bound_embedding,
    history_bound,
    history_shares,
    population_chunks,
    population_size,
    training_rows,
)
from ubp_assets.evaluation.oracle import gap_closed
from ubp_assets.evaluation.report import BOUND_METHOD, BOUND_TASKS, write_bound_report
from ubp_assets.evaluation.targets import Targets
from ubp_assets.events.table import scan_events
from ubp_assets.inputs import load_relevant_clients, read_split
from ubp_assets.keys import RAW_KEYS
from ubp_assets.metadata import column_schema
from ubp_assets.methods import BASELINE, CEILING
from ubp_assets.resources import HEAVY_POOL, ProbeSettings, UbpStorage
from ubp_assets.synthetic.release import MANIFEST
from ubp_assets.synthetic.scales import get_scale
from ubp_assets.warehouse import drop_table, read_table, write_table

BOUND_TABLE = "history_bound_scores"


@dg.asset(
    deps=["challenge_split", "probe_scores", "events", "targets", RAW_KEYS["product_properties"]],
    group_name="evaluation",
    kinds={"pytorch", "parquet"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
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
) -> dg.MaterializeResult:
    from ubp_assets.evaluation.scoring import score_method

    manifest_path = storage.raw_path / MANIFEST
    scores = read_table(warehouse, "probe_scores")
    scored = set(scores["method"])
    reason = None
    if not manifest_path.is_file():
        reason = f"no {manifest_path}: not a synthetic release, no generator to draw from"
    elif BASELINE not in scored:
        reason = f"probe_scores holds no {BASELINE} rows (UBP_PROBE_METHODS left it out)"
    if reason:
        drop_table(warehouse, BOUND_TABLE)
        storage.reports_dir.mkdir(parents=True, exist_ok=True)
        (storage.reports_dir / "history_bound.md").write_text(
            f"# What the history can show\n\nNot computed: {reason}.\n"
        )
        (storage.reports_dir / "history_bound.png").unlink(missing_ok=True)
        context.log.info(f"no history bound: {reason}")
        return dg.MaterializeResult(metadata={"available": False, "reason": reason})
    manifest = json.loads(manifest_path.read_text())
    try:
        scale = get_scale(manifest["scale"])
    except ValueError as error:
        raise dg.Failure(description=f"{manifest_path}: {error}") from None
    started = time.perf_counter()
    cutoff = read_split(warehouse).train_target_start
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
    own = pl.DataFrame(rows).select(pl.lit(BOUND_METHOD).alias("method"), "task", "score")
    own = gap_closed(
        pl.concat([scores.select("method", "task", "score"), own]), BASELINE, CEILING
    ).filter(pl.col("method") == BOUND_METHOD)
    table = history_shares(scores, own, BASELINE)
    seconds = time.perf_counter() - started
    write_table(warehouse, BOUND_TABLE, table)
    storage.reports_dir.mkdir(parents=True, exist_ok=True)
    text, chart = write_bound_report(storage.reports_dir, table, probe_settings.profile)
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
