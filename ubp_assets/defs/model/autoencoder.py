"""The seed paper's residual autoencoder, trained with the study's best parameters."""

import json

import dagster as dg
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import RETRAINS_WEEKLY
from ubp_assets.inputs import read_training_rows
from ubp_assets.location import read_parquet
from ubp_assets.markdown import png_markdown
from ubp_assets.model.tuning import SEED
from ubp_assets.progress import Progress
from ubp_assets.resources import HEAVY_POOL, TrainingSettings, UbpStorage


@dg.asset(
    deps=["hparam_study", "feature_matrix"],
    group_name="model",
    kinds={"pytorch"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=RETRAINS_WEEKLY,
    description="The residual autoencoder (encoder 512-256-128-64 with BatchNorm, GELU and "
    "residual skips, latent 32 or 64, mirrored decoder) trained on the feature matrix with the "
    "study's best parameters (on at most UBP_TRAINING_CLIENTS clients, a seeded sample beyond "
    "that): MSE + lambda_con InfoNCE between two noisy views + lambda_L2 on "
    "the latent, curriculum noise sigma 0.10 -> 0.02, AdamW, early stopping on held-out "
    "clients. Saved to models/autoencoder.pt with the feature names and scaler needed to "
    "encode new clients.",
)
def autoencoder(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    training_settings: TrainingSettings,
) -> dg.MaterializeResult:
    from ubp_assets.model.training import TrainConfig, save_model, train_autoencoder
    from ubp_assets.plots import loss_curves

    if not storage.best_params_path.is_file():
        raise dg.Failure(
            description=f"{storage.best_params_path} is missing: materialize hparam_study first"
        )
    best = json.loads(storage.best_params_path.read_text())
    config = TrainConfig(
        **best["params"],
        epochs=training_settings.epochs,
        seed=SEED,
        device=training_settings.device,
    )
    rows = read_training_rows(warehouse, training_settings.sample_clients, SEED)
    context.log.info(f"training on {rows.described} x {rows.features.shape[1]} features")
    progress = Progress("epoch", config.epochs, context.log.info)  # time left: at most
    result = train_autoencoder(
        rows.features,
        config,
        on_epoch=lambda _, mse: progress.advance(
            len(rows.features), f"(held-out reconstruction {mse:.4f})"
        ),
    )
    scaler = read_parquet(storage.scaler_path)
    save_model(
        storage.autoencoder_path,
        result,
        config,
        extra={"feature_names": rows.names, "scaler": scaler.to_dict(as_series=False)},
    )
    last = result.history[result.best_epoch]
    return dg.MaterializeResult(
        metadata={
            "model_path": dg.MetadataValue.path(str(storage.autoencoder_path)),
            "config": dg.MetadataValue.json(config.as_dict()),
            "study_trial": best["trial"],
            "trained_on": rows.described,
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
                png_markdown(loss_curves(result.history), storage.reports_dir / "autoencoder.png")
            ),
        }
    )
