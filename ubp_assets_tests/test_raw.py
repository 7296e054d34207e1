"""Raw files as observed external assets, and the asset that writes a synthetic release."""

from __future__ import annotations

import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ubp_assets.defs.raw.release_files import raw_files
from ubp_assets.defs.raw.synthetic_release import synthetic_raw
from ubp_assets.keys import RAW_KEYS
from ubp_assets.raw.files import file_state
from ubp_assets.resources import UbpStorage, build_resources


def observe(raw, data, instance) -> dict[str, str]:
    job = dg.define_asset_job("observe", selection=dg.AssetSelection.assets(*RAW_KEYS.values()))
    defs = dg.Definitions(
        assets=[synthetic_raw, raw_files],
        jobs=[job],
        resources=build_resources(UbpStorage(data_dir=str(data), raw_dir=str(raw))),
    )
    assert defs.resolve_job_def("observe").execute_in_process(instance=instance).success
    versions = {}
    for name, key in RAW_KEYS.items():
        record = instance.fetch_observations(key, limit=1).records[0]
        versions[name] = record.asset_observation.tags["dagster/data_version"]
    return versions


def test_a_changed_file_gets_a_new_data_version(raw_copy, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    before = observe(raw_copy, tmp_path, instance)
    assert observe(raw_copy, tmp_path, instance) == before  # nothing changed, same versions
    path = raw_copy / "product_buy.parquet"
    pl.read_parquet(path).head(10).write_parquet(path)
    after = observe(raw_copy, tmp_path, instance)
    assert after["product_buy"] != before["product_buy"]
    assert {k: v for k, v in after.items() if k != "product_buy"} == {
        k: v for k, v in before.items() if k != "product_buy"
    }


def test_missing_file_has_its_own_fingerprint(tmp_path):
    assert file_state(tmp_path / "nope.parquet").fingerprint == "missing"


def test_synthetic_raw_writes_the_release_with_metadata(tmp_path):
    resources = build_resources(UbpStorage(data_dir=str(tmp_path)))
    result = dg.materialize(
        [synthetic_raw],
        resources=resources,
        run_config={"ops": {"synthetic_raw": {"config": {"scale": "tiny", "seed": 3}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    raw = tmp_path / "raw"
    for name in ("product_buy", "page_visit", "product_properties"):
        assert (raw / f"{name}.parquet").is_file()
    assert len(np.load(raw / "input" / "relevant_clients.npy")) == 1_000
    meta = result.asset_materializations_for_node("synthetic_raw")[0].metadata
    assert meta["scale"].value == "tiny"
    assert meta["dagster/row_count"].value > 10_000
    assert "real_release_share" in meta["event_types"].value


def test_synthetic_raw_never_overwrites_a_release_it_did_not_write(tiny_release, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_release, raw)
    (raw / "synthetic_manifest.json").unlink()  # now it looks like the real release
    before = (raw / "product_buy.parquet").read_bytes()
    resources = build_resources(UbpStorage(data_dir=str(tmp_path)))
    with pytest.raises(dg.Failure, match="refusing to overwrite"):
        dg.materialize(
            [synthetic_raw],
            resources=resources,
            run_config={"ops": {"synthetic_raw": {"config": {"scale": "tiny", "seed": 3}}}},
            instance=dg.DagsterInstance.ephemeral(),
        )
    assert (raw / "product_buy.parquet").read_bytes() == before
