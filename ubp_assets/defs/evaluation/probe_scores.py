"""Every registered embedding method scored on the six tasks by the organisers' probe."""

import datetime as dt

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.oracle import gap_closed
from ubp_assets.evaluation.report import gap_table, score_table, with_sums, write_report
from ubp_assets.evaluation.submission import read_submission
from ubp_assets.evaluation.targets import TASKS, Targets
from ubp_assets.metadata import column_schema
from ubp_assets.methods import BASELINE, CEILING, METHODS, Method, method_assets
from ubp_assets.progress import Progress
from ubp_assets.resources import HEAVY_POOL, ProbeSettings, UbpStorage
from ubp_assets.warehouse import write_table

SCORES_TABLE = "probe_scores"


def build_probe_scores(methods: tuple[Method, ...] = METHODS) -> dg.AssetsDefinition:
    """The probe_scores asset over a registry of methods (tests pass one with a method added)."""

    @dg.asset(
        name="probe_scores",
        deps=["targets", *method_assets(methods)],
        group_name="evaluation",
        kinds={"pytorch", "parquet"},
        code_version="1",
        pool=HEAVY_POOL,
        automation_condition=FOLLOWS_INPUTS,
        description="Every embedding method scored on the six tasks by the organisers' probe "
        "(trained on the train window's labels, scored on the validation window's, best of 3 "
        "epochs): AUROC, diversity, novelty and the task score, with the sum over tasks. A "
        "table in the warehouse and a report with a bar chart under reports/.",
    )
    def probe_scores(
        context: dg.AssetExecutionContext,
        storage: UbpStorage,
        warehouse: DuckDBResource,
        probe_settings: ProbeSettings,
    ) -> dg.MaterializeResult:
        from ubp_assets.evaluation.scoring import score_method

        found = Targets.read(storage.target_dir)
        rows = []
        skipped = [m.name for m in methods if not probe_settings.scores(m.name)]
        if skipped:
            context.log.info(
                f"not scored, as the probe settings ask (UBP_PROBE_METHODS): {', '.join(skipped)}"
            )
        scored = [m for m in methods if probe_settings.scores(m.name)]
        progress = Progress("task", len(scored) * len(TASKS), context.log.info)
        for method in scored:
            folder = storage.embeddings_dir / method.name
            if not folder.is_dir() and method.optional:
                context.log.info(f"no {method.name} embeddings on this release: not scored")
                continue
            if not folder.is_dir():
                raise dg.Failure(
                    description=f"{folder} is missing: materialize {method.asset} first"
                )
            client_ids, vectors = read_submission(folder)
            context.log.info(f"scoring {method.name} ({vectors.shape[1]} dimensions) on every task")
            for row in score_method(
                client_ids,
                vectors,
                found,
                probe_settings.profile,
                probe_settings.device,
                on_task=lambda row, name=method.name: progress.advance(
                    row["clients"], f"{name} {row['task']} (score {row['score']:.4f})"
                ),
            ):
                rows.append({"method": method.name, "dimensions": vectors.shape[1], **row})
        scores = with_sums(pl.DataFrame(rows))
        scores = gap_closed(scores, BASELINE, CEILING).with_columns(
            pl.lit(probe_settings.profile).alias("profile"),
            pl.lit(probe_settings.device).alias("device"),
            pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("scored_at"),
        )
        write_table(warehouse, SCORES_TABLE, scores)
        storage.reports_dir.mkdir(parents=True, exist_ok=True)
        chart = write_report(storage.reports_dir, scores, skipped)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": scores.height,
                "dagster/column_schema": column_schema(scores.schema),
                "profile": probe_settings.profile,
                "device": probe_settings.device,
                "methods_not_scored": ", ".join(skipped) or "none",
                "scores": dg.MetadataValue.md(score_table(scores)),
                "gap_closed": dg.MetadataValue.md(gap_table(scores)),
                "chart": dg.MetadataValue.md(chart),
                "report": dg.MetadataValue.path(str(storage.reports_dir / "probe_scores.md")),
            }
        )

    return probe_scores


probe_scores = build_probe_scores()
