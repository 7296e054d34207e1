"""The charts the assets show in the UI and save under reports/. matplotlib is set up here once,
headless, and imported only when a chart is drawn (loading the definitions stays fast)."""

from __future__ import annotations

import numpy as np
import polars as pl


def pyplot():
    """matplotlib.pyplot on the Agg backend: no display is needed, none is opened."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def feature_distributions(matrix: pl.DataFrame, scaler: pl.DataFrame):
    """A histogram of the scaled values of the first two features of every family."""
    plt = pyplot()
    chosen = scaler.group_by("family", maintain_order=True).head(2)
    n = chosen.height
    cols = 4
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, chosen["feature"], strict=False):
        ax.hist(matrix[name].to_numpy(), bins=40, color="#4C72B0")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Scaled feature distributions (two per family)", fontsize=10)
    fig.tight_layout()
    return fig


def study_history(study):
    """Optimisation history (each trial's value and the best so far) and parameter importances."""
    import optuna

    plt = pyplot()
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    fig, (history, importance) = plt.subplots(1, 2, figsize=(11, 3.6))
    numbers = [t.number for t in done]
    values = [t.value for t in done]
    history.scatter(numbers, values, s=18, label="trial")
    history.plot(numbers, np.maximum.accumulate(values), color="C1", label="best so far")
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    for number in pruned:
        history.axvline(number, color="0.85", lw=0.8)
    history.set_xlabel("trial (grey lines: pruned)")
    history.set_ylabel("objective (mean probe score)")
    history.set_title("Optimisation history", fontsize=10)
    history.legend(fontsize=8)
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # too few completed trials to estimate them
        importances = {}
    if importances:
        names = list(importances)[::-1]
        importance.barh(names, [importances[n] for n in names])
        importance.set_title("Parameter importances (fANOVA)", fontsize=10)
    else:
        importance.text(0.5, 0.5, "importances need more\ncompleted trials", ha="center")
        importance.axis("off")
    fig.tight_layout()
    return fig


def loss_curves(history: list[dict]):
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for key in ("train_reconstruction", "holdout_reconstruction"):
        left.plot(epochs, [h[key] for h in history], label=key)
    left.set_title("Reconstruction (MSE)", fontsize=10)
    left.set_xlabel("epoch")
    left.legend(fontsize=8)
    for key in ("train_contrastive", "train_l2", "sigma"):
        right.plot(epochs, [h[key] for h in history], label=key)
    right.set_title("InfoNCE, latent L2 and the noise's sigma", fontsize=10)
    right.set_xlabel("epoch")
    right.set_yscale("log")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scores_by_task(scores: pl.DataFrame, tasks: list[str]):
    plt = pyplot()
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


def against_ceilings(
    table: pl.DataFrame,
    tasks: list[str],
    *,
    baseline: str,
    bound: str,
    ceiling: str,
    target_share: float,
):
    """Each method's score on the bound's tasks against the two ceilings, the history's and the
    oracle's: the distance between them is what no history-built embedding can close."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = table.filter(pl.col("task") == task)
        others = rows.filter(~pl.col("method").is_in([bound, ceiling]))
        ax.barh(others["method"].to_list(), others["score"].to_list(), color="tab:blue")
        lines = {m: rows.filter(pl.col("method") == m)["score"] for m in (baseline, bound, ceiling)}
        for method, colour in ((bound, "tab:orange"), (ceiling, "tab:red")):
            if lines[method].len():
                score = lines[method][0]
                ax.axvline(score, color=colour, linestyle="--", label=f"{method} {score:.3f}")
        if lines[baseline].len() and lines[ceiling].len():
            low, high = lines[baseline][0], lines[ceiling][0]
            target = low + target_share * (high - low)
            label = f"{target_share:.0%} of the oracle's gap {target:.3f}"
            ax.axvline(target, color="tab:green", linestyle=":", label=label)
        ax.set_xlim(0.5, 1.0)
        ax.set_title(f"{task} (validation window)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
