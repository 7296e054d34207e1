"""The probe's scores as people read them: the challenge's tables (methods by tasks), the share
of the baseline-to-oracle gap, and the reports under reports/."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ubp_assets.evaluation.targets import TASKS
from ubp_assets.markdown import markdown_table, png_markdown
from ubp_assets.methods import BASELINE, CEILING

BOUND_METHOD = "history_bound"
BOUND_TASKS = ("churn", "conversion")
TARGET_SHARE = 0.85  # the project's quality target: this share of the baseline-to-oracle gap


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
        + f"\n\n(method - {BASELINE}) / ({CEILING} - {BASELINE}) on each "
        "task's score; the total uses the sums over tasks. Empty where the oracle does not beat "
        "the baseline, as on a task whose validation labels are too thin to rank anything."
    )


def write_report(reports_dir: Path, scores: pl.DataFrame, skipped: list[str] | None = None) -> str:
    """reports/probe_scores.md with the table and reports/probe_scores.png; returns the chart's
    markdown for the UI. `skipped`: registered methods the settings left out, named in the
    report so that a short table is not mistaken for a full one."""
    from ubp_assets.plots import scores_by_task

    tasks = [t for t in TASKS if t in set(scores["task"])]
    chart = png_markdown(scores_by_task(scores, tasks), reports_dir / "probe_scores.png")
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
        + (
            f"Not scored, as the probe settings ask (UBP_PROBE_METHODS): {', '.join(skipped)}.\n\n"
            if skipped
            else ""
        )
        + f"{score_table(scores)}\n\n## Share of the baseline-to-oracle gap closed\n\n"
        f"{gap_table(scores)}\n\n## Every term\n\n{markdown_table(detail, max_rows=200)}\n\n"
        "![probe scores](probe_scores.png)\n"
    )
    (reports_dir / "probe_scores.md").write_text(text)
    return chart


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


def write_bound_report(reports_dir: Path, table: pl.DataFrame, profile: str) -> tuple[str, str]:
    """reports/history_bound.md and .png; returns the tables' and the chart's markdown."""
    from ubp_assets.plots import against_ceilings

    tasks = [t for t in BOUND_TASKS if t in set(table["task"])]
    figure = against_ceilings(
        table,
        tasks,
        baseline=BASELINE,
        bound=BOUND_METHOD,
        ceiling=CEILING,
        target_share=TARGET_SHARE,
    )
    chart = png_markdown(figure, reports_dir / "history_bound.png")
    text = bound_tables(table)
    (reports_dir / "history_bound.md").write_text(
        f"# What the history can show ({profile} probe)\n\n{text}\n\n"
        "![history bound](history_bound.png)\n"
    )
    return text, chart
