"""The asset that writes a synthetic release into the raw folder, and its latent truth."""

from typing import Literal

import dagster as dg
import polars as pl

from ubp_assets.events.schema import RAW_FILES
from ubp_assets.keys import SYNTHETIC_TRUTH
from ubp_assets.markdown import markdown_table
from ubp_assets.resources import UbpStorage
from ubp_assets.synthetic import get_scale, write_release
from ubp_assets.synthetic.release import MANIFEST, TRUTH_FILE

# Shares of each event type in the real release (PROTOCOL.md), to compare the synthetic data with.
REAL_EVENT_SHARES = {
    "page_visit": 156 / 175.4,
    "search_query": 10 / 175.4,
    "add_to_cart": 5.7 / 175.4,
    "remove_from_cart": 1.9 / 175.4,
    "product_buy": 1.8 / 175.4,
}


class SyntheticRawConfig(dg.Config):
    scale: Literal["tiny", "demo", "tenth", "quarter", "full"] = "demo"
    seed: int = 2025


@dg.asset(
    group_name="raw",
    kinds={"numpy", "parquet"},
    code_version="1",
    description="Writes a synthetic release in the challenge's exact schema into the raw folder "
    "(six parquet files and input/relevant_clients.npy), drawn from latent per-client traits. "
    "Refuses to overwrite a folder that holds a release it did not write.",
)
def synthetic_raw(
    context: dg.AssetExecutionContext, config: SyntheticRawConfig, storage: UbpStorage
) -> dg.MaterializeResult:
    raw = storage.raw_path
    present = [f.filename for f in RAW_FILES.values() if (raw / f.filename).exists()]
    if present and not (raw / MANIFEST).exists():
        raise dg.Failure(
            description=f"{raw} holds {', '.join(present)} that no synthetic run wrote (no "
            f"{MANIFEST}); refusing to overwrite what may be the real release. Point UBP_RAW_DIR "
            "elsewhere or move those files."
        )
    scale = get_scale(config.scale)
    summary = write_release(scale, config.seed, raw, progress=context.log.info)
    shares = {name: summary.rows[name] / summary.n_events for name in REAL_EVENT_SHARES}
    table = pl.DataFrame(
        {
            "event_type": list(REAL_EVENT_SHARES),
            "rows": [summary.rows[n] for n in REAL_EVENT_SHARES],
            "share": [round(shares[n], 4) for n in REAL_EVENT_SHARES],
            "real_release_share": [round(v, 4) for v in REAL_EVENT_SHARES.values()],
        }
    )
    return dg.MaterializeResult(
        metadata={
            "scale": config.scale,
            "seed": config.seed,
            "path": dg.MetadataValue.path(str(raw)),
            "dagster/row_count": summary.n_events,
            "clients": summary.n_clients,
            "relevant_clients": summary.n_relevant,
            "skus": summary.n_skus,
            "days": f"{summary.first_day}..{summary.last_day}",
            "seconds": summary.seconds,
            "event_types": dg.MetadataValue.md(markdown_table(table)),
        }
    )


# Only the oracle reads it (a test holds every feature and model asset to that).
synthetic_truth = dg.AssetSpec(
    SYNTHETIC_TRUTH,
    deps=[synthetic_raw],
    group_name="raw",
    kinds={"parquet"},
    description=f"`{TRUTH_FILE}`: each client's latent traits as the synthetic generator drew "
    "them. Absent from the real release; read by `oracle_embeddings` alone.",
    metadata={"filename": str(TRUTH_FILE)},
)
