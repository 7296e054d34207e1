"""One embedding scored on the six tasks, exactly as the organisers score it (PROTOCOL.md)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ubp_assets.evaluation.targets import TASKS, Targets, labels, task_clients


def score_method(
    client_ids: np.ndarray,
    vectors: np.ndarray,
    found: Targets,
    profile_name: str,
    device: str,
    *,
    tasks: tuple[str, ...] = tuple(TASKS),
    on_task: Callable[[dict], None] | None = None,
) -> list[dict]:
    """One row per task: the organisers' probe trained on the train window's labels and scored,
    epoch by epoch, on the validation window's; the best epoch's score counts. `on_task(row)`
    runs as each task's row is in (a task takes minutes at the full size)."""
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
        every = len(rows_of_task) == len(client_ids)  # then the rows are 0..n-1: no copy
        result = run_probe(
            vectors if every else vectors[rows_of_task],
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
        if on_task is not None:
            on_task(rows[-1])
    return rows
