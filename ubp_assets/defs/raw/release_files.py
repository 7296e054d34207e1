"""The release's files as observable source assets: a changed file marks its dependants stale."""

import dagster as dg
import numpy as np

from ubp_assets.keys import RAW_FILENAMES, RAW_KEYS
from ubp_assets.raw.files import file_state
from ubp_assets.resources import UbpStorage


def _raw_spec(name: str) -> dg.AssetSpec:
    filename = RAW_FILENAMES[name]
    return dg.AssetSpec(
        RAW_KEYS[name],
        deps=["synthetic_raw"],
        group_name="raw",
        kinds={"numpy"} if name == "relevant_clients" else {"parquet"},
        description=f"`{filename}` of the release, as released (or as `synthetic_raw` wrote it).",
        metadata={"filename": filename},
    )


@dg.multi_observable_source_asset(
    specs=[_raw_spec(name) for name in RAW_KEYS],
    name="raw_files",
    description="Observes the release's files by fingerprint (size, modification time, rows).",
)
def raw_files(storage: UbpStorage):
    for name, key in RAW_KEYS.items():
        state = file_state(storage.raw_path / RAW_FILENAMES[name])
        metadata: dict[str, object] = {
            "path": dg.MetadataValue.path(str(state.path)),
            "exists": state.exists,
        }
        if state.exists:
            metadata["size_bytes"] = state.size
            if state.rows is not None:
                metadata["dagster/row_count"] = state.rows
            if name == "relevant_clients":
                metadata["dagster/row_count"] = len(np.load(state.path, mmap_mode="r"))
        yield dg.ObserveResult(
            asset_key=key, data_version=dg.DataVersion(state.fingerprint), metadata=metadata
        )
