"""The Optuna study over the autoencoder's hyper-parameters, without touching the scored window.

Objective: train the autoencoder with a trial's parameters, encode every relevant client, then
train the fast probe on half of the clients and score it on the other half, with labels from the
train target window only; the value is the mean score over churn and the propensity tasks whose
labels that window fills. The validation window (the exam) is never read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ubp_assets.evaluation.targets import TASKS, Targets, labels, task_clients

if TYPE_CHECKING:  # torch loads only when a study runs, not when Dagster loads the definitions
    from ubp_assets.model.training import TrainConfig

STUDY_NAME = "residual_autoencoder"
SEED = 0  # the sampler's, the trials' and the final autoencoder's
# Each trial names the run that executes it, so that a trial left running by a killed run can be
# told from one a live worker is still training.
OWNER_ATTR = "owner_run_id"
# How many trials the study held when hparam_study last materialized: trials finished since then
# by runs that died before materializing count towards the next materialization's quota.
MARK_ATTR = "trials_at_last_materialization"
OBJECTIVE = (
    "mean fast-probe score over churn and the propensity tasks, probe trained on one half of "
    "the relevant clients and scored on the other, labels from the train target window only"
)


@dataclass(frozen=True)
class TuningTask:
    """One task of the objective: labels from the train window for every relevant client (rows
    not in the task, such as churn's inactive clients, are left out of both halves)."""

    name: str
    labels: np.ndarray  # (n_clients, k) float32
    rows: np.ndarray  # indices of the clients the task covers
    popularity: np.ndarray | None  # None: a churn-type task


def tuning_tasks(client_ids: np.ndarray, found: Targets) -> list[TuningTask]:
    """Churn and the propensity tasks, labelled from the train target window only."""
    tasks = []
    for task in TASKS.values():
        if task.name == "conversion" or (not task.is_binary and not len(found.values[task.name])):
            continue
        tasks.append(
            TuningTask(
                name=task.name,
                labels=labels(task, client_ids, found.train_target, found),
                rows=task_clients(task, client_ids, found),
                popularity=None if task.is_binary else found.popularity[task.name],
            )
        )
    return tasks


def halves(rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of a task's clients: the probe trains on the first half, scores the second."""
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = len(rows) // 2
    return np.sort(rows[order[:cut]]), np.sort(rows[order[cut:]])


def fills_its_labels(task: TuningTask, score_rows: np.ndarray) -> bool:
    """A propensity task enters the objective when most of its labels have a buyer among the
    scored clients; otherwise its AUROC is mostly the zeros of single-class labels (noise)."""
    if task.popularity is None:
        return True
    positives = task.labels[score_rows].sum(axis=0) > 0
    return bool(positives.mean() >= 0.5)


def probe_value(
    latent: np.ndarray, tasks: list[TuningTask], profile_name: str, device: str, seed: int
) -> dict[str, float]:
    """Each task's fast-probe score on the held-out half of its clients."""
    from ubp_assets.evaluation.probe import PROFILES, run_probe

    profile = PROFILES[profile_name]
    scores = {}
    for task in tasks:
        train_rows, score_rows = halves(task.rows, seed)
        if not fills_its_labels(task, score_rows):
            continue
        result = run_probe(
            latent,
            task.labels,
            task.labels,
            popularity=task.popularity,
            profile=profile,
            device=device,
            train_rows=train_rows,
            score_rows=score_rows,
        )
        scores[task.name] = result.best.score
    return scores


def suggest_config(trial, base: TrainConfig) -> TrainConfig:
    """The search space: the paper's latent sizes and the loss's weights, on log scales."""
    return replace(
        base,
        latent_dim=trial.suggest_categorical("latent_dim", [32, 64]),
        lambda_con=trial.suggest_float("lambda_con", 0.01, 1.0, log=True),
        lambda_l2=trial.suggest_float("lambda_l2", 1e-6, 1e-2, log=True),
        learning_rate=trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        temperature=trial.suggest_float("temperature", 0.05, 0.5, log=True),
        batch_size=trial.suggest_categorical("batch_size", [128, 256, 512]),
    )


def make_objective(
    features: np.ndarray,
    tasks: list[TuningTask],
    base: TrainConfig,
    *,
    probe_profile: str = "fast",
    log: Callable[[str], None] = print,
    owner: str = "",
) -> Callable:
    """Optuna's objective. Each epoch reports the negated held-out reconstruction error (higher
    is better, like the objective) so the median pruner stops trials that reconstruct worse than
    the median trial did at the same epoch."""
    import optuna

    from ubp_assets.model.training import encode, train_autoencoder

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(OWNER_ATTR, owner)
        config = suggest_config(trial, base)

        def on_epoch(epoch: int, holdout_mse: float) -> None:
            trial.report(-holdout_mse, epoch)
            if trial.should_prune():
                log(f"trial {trial.number}: pruned at epoch {epoch} (held-out {holdout_mse:.4f})")
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        trained = train_autoencoder(features, config, on_epoch=on_epoch)
        latent = encode(trained.model, features, device=config.device)
        scores = probe_value(latent, tasks, probe_profile, config.device, base.seed)
        if not scores:
            raise ValueError("no task has labels enough to tune on")
        for name, value in scores.items():
            trial.set_user_attr(f"score_{name}", value)
        trial.set_user_attr("epochs_trained", len(trained.history))
        trial.set_user_attr("samples_per_second", trained.samples_per_second)
        value = float(np.mean(list(scores.values())))
        log(f"trial {trial.number}: {value:.4f} {trial.params}")
        return value

    return objective


def trial_seeded_sampler(seed: int):
    """Optuna's TPE sampler whose draws for trial k come from `seed + k`: a study resumed later,
    or fed by several workers at once (each trial's number is unique in the storage), never
    repeats a point, and the first (random) trials draw what a one-worker study draws, whoever
    runs them. Optuna has no public reseed with a given value, hence the private generators."""
    import optuna

    class TrialSeededTPESampler(optuna.samplers.TPESampler):
        def before_trial(self, study, trial) -> None:
            own = seed + trial.number
            self._rng.rng.seed(own)  # TPE's own draws
            self._random_sampler._rng.rng.seed(own)  # the startup trials' random draws
            super().before_trial(study, trial)

    return TrialSeededTPESampler(seed=seed, n_startup_trials=4)


def _rdb_storage(storage_url: str, attempts: int = 5):
    """Optuna's storage at the URL. Workers that open a new database at the same moment race to
    create its tables (a unique-key error in all but one): the others wait and open what the
    first created."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(storage_url)
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(storage_url: str, seed: int):
    """Create or resume the study, at any storage URL (SQLite for one process, a server database
    such as Postgres for several workers)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=_rdb_storage(storage_url),
        direction="maximize",
        load_if_exists=True,
        sampler=trial_seeded_sampler(seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    if MARK_ATTR not in study.user_attrs:  # a new study, or one older than the mark
        study.set_user_attr(MARK_ATTR, len(study.trials))
    return study


def fail_orphaned_trials(study, owner_is_live: Callable[[str], bool]) -> list[int]:
    """Mark failed the trials left running by a run that is no longer live (killed in the middle
    of a trial), so the study resumes with its finished trials and never counts a dead one as
    running. Returns their numbers."""
    from optuna.trial import TrialState

    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(OWNER_ATTR, "")
        if owner and owner_is_live(owner):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(
            trial_id, "failed_because", f"its run {owner or '(unknown)'} ended while it ran"
        )
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        failed.append(trial.number)
    return failed


def trials_owed(study, wanted: int) -> int:
    """Trials this materialization still adds: `wanted`, less those finished (complete or pruned)
    since the last materialization by runs that died before recording one."""
    mark = study.user_attrs.get(MARK_ATTR, len(study.trials))
    carried = [t for t in study.trials[mark:] if t.state.name in ("COMPLETE", "PRUNED")]
    return max(0, wanted - len(carried))


def trials_table(study) -> list[dict]:
    rows = []
    for t in study.trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value if t.state.name == "COMPLETE" else None,
                "last_epoch": max(t.intermediate_values, default=None),
                "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                **t.params,
            }
        )
    return rows
