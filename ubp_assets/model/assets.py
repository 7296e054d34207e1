"""The seed paper's model as assets: the Optuna study, the trained autoencoder, the embeddings.

torch and optuna are imported inside the asset bodies, so loading the definitions stays fast.
"""

import datetime as dt
import json
import time

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ubp_assets.evaluation.assets import publish_embeddings, submission_check_spec, targets
from ubp_assets.evaluation.submission import write_submission
from ubp_assets.evaluation.targets import TASKS, Targets, labels, task_clients
from ubp_assets.events.assets import events
from ubp_assets.events.table import scan_events
from ubp_assets.features.assets import (
    AFFINITY_TABLE,
    MATRIX_TABLE,
    feature_cutoff,
    feature_matrix,
    item_affinity,
    load_relevant_clients,
)
from ubp_assets.metadata import markdown_table, png_markdown
from ubp_assets.model.tuning import OBJECTIVE, TuningTask
from ubp_assets.raw.assets import RAW_KEYS
from ubp_assets.resources import WAREHOUSE_POOL, FeatureSettings, TrainingSettings, UbpStorage
from ubp_assets.warehouse import read_table, write_table

SEED = 0
BEST_PARAMS = "best_params.json"
MODEL_PATH = "model_path"
COMPOSITIONS = {
    "latent": "autoencoder_latent",  # the paper's profile
    "latent+features": "autoencoder_latent_features",  # the latent beside the scaled features
    "universal": "universal",  # the latent, the item affinity and the activity forecast
}
DEFAULT_COMPOSITION = "universal"
FORECAST_TABLE = "activity_forecast"
# The forecast's three columns are scaled up after standardising: among a thousand affinity
# columns the probe otherwise under-uses them. Chosen on the train target window (probe trained
# on one half of the clients, scored on the other; docs/quality.md).
FORECAST_WEIGHT = 16.0
# Affinity columns are sparse: a client with a rare item lies tens of standard deviations out
# and, through the probe's first LayerNorm, drowns the rest of their row. Each standardised
# column is clipped to this bound instead (near "above the mean on this item or not"). Chosen
# on the train-window halves like the weight above.
AFFINITY_BOUND = 0.5


def read_features(warehouse: DuckDBResource) -> tuple[np.ndarray, np.ndarray, list[str]]:
    matrix = read_table(warehouse, MATRIX_TABLE)
    names = matrix.columns[1:]
    return matrix["client_id"].to_numpy(), matrix.drop("client_id").to_numpy(), names


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


def _run_is_live(context: dg.AssetExecutionContext, run_id: str) -> bool:
    """A run that the instance knows and that has not ended (`ubp run` and the daemon's run
    monitoring mark dead runs failed, so a killed run's trial is freed by the next study)."""
    if run_id == context.run.run_id:
        return True
    run = context.instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


@dg.asset(
    deps=[feature_matrix, targets],
    group_name="model",
    kinds={"optuna", "pytorch"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    description="A resumable Optuna study (seeded TPE sampler, median pruner on each epoch's "
    "held-out reconstruction) over the autoencoder's latent size (32, 64), lambda_con, "
    f"lambda_L2, learning rate, temperature and batch size. Objective: the {OBJECTIVE}. Stored "
    "in models/hparam_study.db: each materialization adds trials to the same study.",
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

    client_ids, features, _ = read_features(warehouse)
    tasks = tuning_tasks(client_ids, Targets.read(storage.target_dir))
    base = TrainConfig(
        epochs=training_settings.trial_epochs,
        patience=3,
        seed=SEED,
        device=training_settings.device,
    )
    storage.models_dir.mkdir(parents=True, exist_ok=True)
    database = storage.models_dir / "hparam_study.db"
    study = open_study(f"sqlite:///{database}", SEED)
    orphaned = fail_orphaned_trials(study, lambda run_id: _run_is_live(context, run_id))
    if orphaned:
        context.log.warning(f"trials {orphaned} were left running by runs that ended: failed")
    before = study.user_attrs[MARK_ATTR]
    owed = trials_owed(study, training_settings.trials)
    context.log.info(
        f"study has {len(study.trials)} trials; adding {owed} "
        f"({training_settings.trials} a materialization, less those an interrupted run finished)"
    )
    study.optimize(
        make_objective(features, tasks, base, log=context.log.info, owner=context.run.run_id),
        n_trials=owed,
        timeout=training_settings.study_timeout_s,
        catch=(),
    )
    if not [t for t in study.trials if t.state.name == "COMPLETE"]:
        raise dg.Failure(description="no trial of the study has completed yet")
    best = study.best_trial
    (storage.models_dir / BEST_PARAMS).write_text(
        json.dumps({"trial": best.number, "value": best.value, "params": best.params}, indent=2)
    )
    trials = pl.DataFrame(trials_table(study))
    study.set_user_attr(MARK_ATTR, len(study.trials))
    return dg.MaterializeResult(
        metadata={
            "objective": OBJECTIVE,
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
            "study_database": dg.MetadataValue.path(str(database)),
            "plots": dg.MetadataValue.md(
                png_markdown(_study_plot(study), storage.reports_dir / "hparam_study.png")
            ),
        }
    )


@dg.asset(
    deps=[hparam_study, feature_matrix],
    group_name="model",
    kinds={"pytorch"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    description="The residual autoencoder (encoder 512-256-128-64 with BatchNorm, GELU and "
    "residual skips, latent 32 or 64, mirrored decoder) trained on the feature matrix with the "
    "study's best parameters: MSE + lambda_con InfoNCE between two noisy views + lambda_L2 on "
    "the latent, curriculum noise sigma 0.10 -> 0.02, AdamW, early stopping on held-out "
    "clients. One file per materialization under models/autoencoder/, with the feature names "
    "and scaler needed to encode new clients.",
)
def autoencoder(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    training_settings: TrainingSettings,
) -> dg.MaterializeResult:
    from ubp_assets.model.training import TrainConfig, save_model, train_autoencoder

    best_path = storage.models_dir / BEST_PARAMS
    if not best_path.is_file():
        raise dg.Failure(description=f"{best_path} is missing: materialize hparam_study first")
    best = json.loads(best_path.read_text())
    config = TrainConfig(
        **best["params"],
        epochs=training_settings.epochs,
        seed=SEED,
        device=training_settings.device,
    )
    _, features, names = read_features(warehouse)
    context.log.info(f"training on {features.shape[0]:,} clients x {features.shape[1]} features")
    result = train_autoencoder(
        features,
        config,
        on_epoch=lambda e, mse: context.log.info(f"epoch {e}: held-out reconstruction {mse:.4f}"),
    )
    scaler = pl.read_parquet(storage.root / "warehouse" / "feature_matrix" / "scaler.parquet")
    path = storage.models_dir / "autoencoder" / f"{context.run.run_id}.pt"
    save_model(
        path,
        result,
        config,
        extra={"feature_names": names, "scaler": scaler.to_dict(as_series=False)},
    )
    last = result.history[result.best_epoch]
    return dg.MaterializeResult(
        metadata={
            MODEL_PATH: dg.MetadataValue.path(str(path)),
            "config": dg.MetadataValue.json(config.as_dict()),
            "study_trial": best["trial"],
            "parameters": result.parameter_count,
            "device": result.device,
            "samples_per_second": round(result.samples_per_second, 1),
            "epochs_trained": len(result.history),
            "best_epoch": result.best_epoch,
            **{
                f"final_{k}": round(float(v), 5)
                for k, v in last.items()
                if k.startswith(("train_", "holdout_"))
            },
            "loss_curves": dg.MetadataValue.md(
                png_markdown(_loss_plot(result.history), storage.reports_dir / "autoencoder.png")
            ),
        }
    )


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[events, RAW_KEYS["relevant_clients"]],
    group_name="model",
    kinds={"pytorch", "duckdb"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    io_manager_key="warehouse_io",
    description="Self-supervised from the input alone: a network trained at six earlier cut days "
    "to predict each client's next two weeks (a buy, a cart add, any event) from their activity "
    "profile, applied at the feature cutoff. Logits per relevant client; the strongest signal "
    "for churn and conversion in the universal embedding.",
)
def activity_forecast(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    feature_settings: FeatureSettings,
    training_settings: TrainingSettings,
    challenge_split: pl.DataFrame,
) -> pl.DataFrame:
    from ubp_assets.model.forecast import TARGETS, ForecastConfig
    from ubp_assets.model.forecast import activity_forecast as forecast

    cutoff = dt.datetime.combine(feature_cutoff(feature_settings, challenge_split), dt.time())
    relevant = load_relevant_clients(storage)
    started = time.perf_counter()
    found = forecast(
        scan_events(storage.events_dir),
        relevant,
        cutoff,
        ForecastConfig(device=training_settings.device),
        progress=context.log.info,
    )
    frame = pl.DataFrame({"client_id": relevant}).hstack(
        pl.DataFrame(found.logits, schema=[f"next_{t}" for t in TARGETS])
    )
    probabilities = frame.select(
        pl.col(f"next_{t}").map_batches(lambda s: 1 / (1 + (-s).exp())).mean() for t in TARGETS
    )
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "cutoff": str(cutoff.date()),
            "training_rows": found.training_rows,
            "final_loss": round(found.final_loss, 4),
            "positive_rates_in_training": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in found.positive_rates.items()}
            ),
            "mean_predicted_at_cutoff": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in probabilities.row(0, named=True).items()}
            ),
            "seconds": round(time.perf_counter() - started, 1),
            "preview": dg.MetadataValue.md(markdown_table(frame)),
        }
    )
    return frame


class UserEmbeddingsConfig(dg.Config):
    composition: str = Field(
        default=DEFAULT_COMPOSITION,
        description='"latent" (the paper\'s profile), "latent+features" (the latent beside the '
        'scaled features) or "universal" (the latent, the item affinity and the activity '
        "forecast, standardised); the "
        "submission and the warehouse table hold this one, and all three are written for the "
        "probe to score.",
    )


def standardised(
    frame: pl.DataFrame, client_ids: np.ndarray, bound: float | None = None
) -> np.ndarray:
    """`frame`'s columns (after client_id) in the order of client_ids, each to mean 0 and
    standard deviation 1 over the clients (constant columns to 0), clipped to +-bound if one is
    given, float32."""
    values = (
        pl.DataFrame({"client_id": client_ids})
        .join(frame, on="client_id", how="left", validate="1:1", maintain_order="left")
        .drop("client_id")
        .fill_null(0.0)
        .to_numpy()
        .astype(np.float64)
    )
    spread = values.std(axis=0)
    scores = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    if bound is not None:
        scores = np.clip(scores, -bound, bound)
    return scores.astype(np.float32)


@dg.asset(
    deps=[autoencoder, feature_matrix, item_affinity, activity_forecast],
    group_name="model",
    kinds={"pytorch", "duckdb", "numpy"},
    code_version="2",
    pool=WAREHOUSE_POOL,
    check_specs=[submission_check_spec("user_embeddings")],
    description="Every relevant client's embedding from the latest autoencoder: "
    "embeddings/user_embeddings/ in the submission format (client_ids.npy int64, "
    "embeddings.npy float16) and the warehouse table user_embeddings, in the configured "
    "composition (by default `universal`: the latent, the item affinity and the activity "
    "forecast). Every composition is also written for the probe to score.",
)
def user_embeddings(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    config: UserEmbeddingsConfig,
):
    from ubp_assets.model.training import encode, load_model

    if config.composition not in COMPOSITIONS:
        raise dg.Failure(
            description=f"composition {config.composition!r} is not one of {list(COMPOSITIONS)}"
        )
    event = context.instance.get_latest_materialization_event(autoencoder.key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure(description="autoencoder has no materialization: train it first")
    model_path = event.asset_materialization.metadata[MODEL_PATH].value
    model, trained_with, extra = load_model(model_path)
    client_ids, features, names = read_features(warehouse)
    if names != extra["feature_names"]:
        raise dg.Failure(
            description="the feature matrix's columns differ from the ones the autoencoder was "
            "trained on: rematerialize autoencoder"
        )
    started = time.perf_counter()
    latent = encode(model, features)
    affinity = standardised(read_table(warehouse, AFFINITY_TABLE), client_ids, AFFINITY_BOUND)
    ahead = FORECAST_WEIGHT * standardised(read_table(warehouse, FORECAST_TABLE), client_ids)
    vectors = {
        "latent": latent,
        "latent+features": np.hstack([latent, features]),
        "universal": np.hstack([latent, affinity, ahead]),
    }
    for composition, method in COMPOSITIONS.items():
        write_submission(storage.embeddings_dir / method, client_ids, vectors[composition])
    chosen = vectors[config.composition]
    table = pl.DataFrame({"client_id": client_ids}).hstack(
        pl.DataFrame(chosen.astype(np.float32), schema=[f"e{j}" for j in range(chosen.shape[1])])
    )
    write_table(warehouse, "user_embeddings", table)
    yield from publish_embeddings(
        storage,
        "user_embeddings",
        client_ids,
        chosen,
        time.perf_counter() - started,
        metadata={
            "composition": config.composition,
            "affinity_bound": AFFINITY_BOUND,
            "forecast_weight": FORECAST_WEIGHT,
            "model_path": dg.MetadataValue.path(model_path),
            "latent_dim": trained_with.latent_dim,
            "dimensions_by_part": dg.MetadataValue.json(
                {
                    "latent": latent.shape[1],
                    "features": features.shape[1],
                    "affinity": affinity.shape[1],
                    "forecast": ahead.shape[1],
                }
            ),
            "dagster/row_count": len(client_ids),
        },
    )


def _study_plot(study):
    """Optimisation history (each trial's value and the best so far) and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

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


def _loss_plot(history: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
