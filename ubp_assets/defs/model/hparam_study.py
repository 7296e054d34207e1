"""The resumable Optuna study over the seed paper's autoencoder, tuned on the train window only."""

import json

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import RETRAINS_WEEKLY
from ubp_assets.evaluation.targets import Targets
from ubp_assets.inputs import read_training_rows
from ubp_assets.markdown import markdown_table, png_markdown
from ubp_assets.model.tuning import OBJECTIVE, SEED, tuning_tasks
from ubp_assets.progress import Progress
from ubp_assets.resources import HEAVY_POOL, TrainingSettings, UbpStorage


def _run_is_live(context: dg.AssetExecutionContext, run_id: str) -> bool:
    """A run that the instance knows and that has not ended (`ubp run` and the daemon's run
    monitoring mark dead runs failed, so a killed run's trial is freed by the next study)."""
    if run_id == context.run.run_id:
        return True
    run = context.instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


@dg.asset(
    deps=["feature_matrix", "targets"],
    group_name="model",
    kinds={"optuna", "pytorch"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=RETRAINS_WEEKLY,
    description="A resumable Optuna study (seeded TPE sampler, median pruner on each epoch's "
    "held-out reconstruction) over the autoencoder's latent size (32, 64), lambda_con, "
    f"lambda_L2, learning rate, temperature and batch size. Objective: the {OBJECTIVE}. Stored "
    "at the configured storage URL (SQLite at models/hparam_study.db by default): each "
    "materialization adds trials to the same study.",
)
def hparam_study(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    training_settings: TrainingSettings,
) -> dg.MaterializeResult:
    from ubp_assets.model.training import TrainConfig
    from ubp_assets.model.tuning import (
        MARK_ATTR,
        fail_orphaned_trials,
        make_objective,
        open_study,
        trials_owed,
        trials_table,
    )
    from ubp_assets.plots import study_history

    rows = read_training_rows(warehouse, training_settings.sample_clients, SEED)
    context.log.info(f"trials train and score on {rows.described}")
    tasks = tuning_tasks(rows.client_ids, Targets.read(storage.target_dir))
    base = TrainConfig(
        epochs=training_settings.trial_epochs,
        patience=3,
        seed=SEED,
        device=training_settings.device,
    )
    storage.models_dir.mkdir(parents=True, exist_ok=True)
    url = training_settings.study_url(storage)
    study = open_study(url, SEED)
    orphaned = fail_orphaned_trials(study, lambda run_id: _run_is_live(context, run_id))
    if orphaned:
        context.log.warning(f"trials {orphaned} were left running by runs that ended: failed")
    before = study.user_attrs[MARK_ATTR]
    owed = trials_owed(study, training_settings.trials)
    context.log.info(
        f"study has {len(study.trials)} trials; adding {owed} "
        f"({training_settings.trials} a materialization, less those an interrupted run finished)"
    )
    progress = Progress("trial", owed, context.log.info)
    study.optimize(
        make_objective(rows.features, tasks, base, log=context.log.info, owner=context.run.run_id),
        n_trials=owed,
        timeout=training_settings.study_timeout_s,
        catch=(),
        callbacks=[
            lambda _, trial: progress.advance(
                len(rows.client_ids), f"{trial.number} {trial.state.name.lower()}"
            )
        ],
    )
    if not [t for t in study.trials if t.state.name == "COMPLETE"]:
        raise dg.Failure(description="no trial of the study has completed yet")
    best = study.best_trial
    storage.best_params_path.write_text(
        json.dumps({"trial": best.number, "value": best.value, "params": best.params}, indent=2)
    )
    trials = pl.DataFrame(trials_table(study))
    study.set_user_attr(MARK_ATTR, len(study.trials))
    return dg.MaterializeResult(
        metadata={
            "objective": OBJECTIVE,
            "trained_on": rows.described,
            "trials_total": len(study.trials),
            "trials_added": len(study.trials) - before,
            "trials_pruned": trials.filter(pl.col("state") == "pruned").height,
            "trials_failed": trials.filter(pl.col("state") == "fail").height,
            "best_value": float(best.value),
            "best_trial": best.number,
            "best_params": dg.MetadataValue.json(best.params),
            "best_task_scores": dg.MetadataValue.json(
                {k[6:]: v for k, v in best.user_attrs.items() if k.startswith("score_")}
            ),
            "trials": dg.MetadataValue.md(markdown_table(trials, max_rows=100)),
            "study_storage": _without_password(url),
            "dashboard": f"optuna-dashboard {_without_password(url)}",
            "plots": dg.MetadataValue.md(
                png_markdown(study_history(study), storage.reports_dir / "hparam_study.png")
            ),
        }
    )


def _without_password(url: str) -> str:
    """The storage URL as it may be shown: a password in it is masked."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"
