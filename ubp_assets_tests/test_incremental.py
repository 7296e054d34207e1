"""A new day, end to end: the raw-files sensor asks for exactly that day, declarative automation
rebuilds what depends on it and nothing else, and the result equals a full rebuild."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter

import dagster as dg
import polars as pl
import pytest

from ubp_assets.definitions import make_definitions
from ubp_assets.defs.automation.sensors import missing_ranges, raw_files_sensor
from ubp_assets.events.schema import RAW_EVENT_FILES
from ubp_assets.methods import method_assets
from ubp_assets.resources import (
    FeatureSettings,
    ProbeSettings,
    TrainingSettings,
    UbpStorage,
    build_resources,
)
from ubp_assets.warehouse import WarehouseDir

NEW_DAY = "2022-11-09"
DAILY = {
    "events",
    "temporal_daily",
    "session_daily",
    "behavioral_daily",
    "item_popularity_daily",
    "conversion_daily",
    "identity_daily",
}
FOLLOWERS = {
    "challenge_split",
    "temporal_features",
    "session_features",
    "behavioral_features",
    "conversion_features",
    "advanced_features",
    "identity_features",
    "feature_matrix",
    "targets",
    "product_urls",
    "item_affinity",
    "activity_forecast",
    # every method of the registry but the noise, which reads the relevant clients alone
    *(set(method_assets()) - {"random_embeddings"}),
    "probe_scores",
    "history_bound_scores",
}


def definitions(raw, data):
    return make_definitions(
        build_resources(
            UbpStorage(data_dir=str(data), raw_dir=str(raw)),
            FeatureSettings(cutoff="split"),
            ProbeSettings(profile="fast"),
            TrainingSettings(trials=1, trial_epochs=1, epochs=2),
        )
    )


def without_new_day(source, dest):
    """A copy of the release whose event files stop before NEW_DAY."""
    shutil.copytree(source, dest)
    for name in RAW_EVENT_FILES:
        path = dest / f"{name}.parquet"
        frame = pl.read_parquet(path)
        frame.filter(pl.col("timestamp").str.slice(0, 10) < NEW_DAY).write_parquet(path)


def sense(defs, instance, cursor):
    """One tick of the raw-files sensor; its runs are executed here, as the daemon would."""
    storage = defs.resources["storage"]
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"storage": storage}
    )
    result = raw_files_sensor(context)
    if isinstance(result, dg.SkipReason):
        return cursor, []
    for observation in result.asset_events:
        instance.report_runless_asset_event(observation)
    job = defs.resolve_job_def("daily_job")
    for request in result.run_requests:
        assert job.execute_in_process(instance=instance, tags=request.tags).success
    return result.cursor, result.run_requests


def automate(defs, instance, cursor=None):
    """Evaluate the automation conditions and run what they request until nothing is left."""
    graph = defs.resolve_asset_graph()
    while True:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        keys = [r.key for r in result.results if r.true_subset.size > 0]
        if not keys:
            return cursor
        assert all(graph.get(k).partitions_def is None for k in keys)
        run_assets(defs, instance, [k.to_user_string() for k in keys])


def materializations(instance) -> Counter:
    """How often each (asset, partition) has been materialized in this instance."""
    counts: Counter = Counter()
    for key in instance.get_asset_keys():
        for record in instance.fetch_materializations(key, limit=10_000).records:
            counts[(key.to_user_string(), record.asset_materialization.partition)] += 1
    return counts


def run_assets(defs, instance, names) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(n) for n in names]
    assert job.execute_in_process(instance=instance, asset_selection=keys).success


FOLDS = [f"{f}_features" for f in ("temporal", "session", "behavioral", "conversion")] + [
    f"{f}_features" for f in ("advanced", "identity")
]


@pytest.mark.slow
def test_a_new_day_rebuilds_its_partitions_and_what_follows_and_equals_a_full_build(
    tiny_release, tmp_path
):
    raw = tmp_path / "raw"
    without_new_day(tiny_release, raw)
    data = tmp_path / "data"
    defs = definitions(raw, data)
    instance = dg.DagsterInstance.ephemeral()

    cursor, requests = sense(defs, instance, None)
    assert len(requests) == 1  # every day the files cover, as one single-run backfill
    assert requests[0].tags["dagster/asset_partition_range_end"] == "2022-11-08"
    # the first full build, as `ubp run` does; automation takes it from there
    for job in ("features_job", "embeddings_job"):
        assert defs.resolve_job_def(job).execute_in_process(instance=instance).success
    automation_cursor = automate(defs, instance)  # a first look: everything is up to date
    assert sense(defs, instance, cursor)[1] == []  # nothing changed: nothing asked
    before = materializations(instance)

    for name in RAW_EVENT_FILES:  # the new day arrives
        shutil.copy(tiny_release / f"{name}.parquet", raw / f"{name}.parquet")
    cursor, requests = sense(defs, instance, cursor)
    assert [r.tags["dagster/asset_partition_range_start"] for r in requests] == [NEW_DAY]
    automate(defs, instance, automation_cursor)
    new = materializations(instance) - before

    assert {(name, NEW_DAY) for name in DAILY} | {(name, None) for name in FOLLOWERS} == set(new)
    assert all(count == 1 for count in new.values())  # each once; the model is not retrained

    full_data = tmp_path / "full"
    full = definitions(tiny_release, full_data)
    full_instance = dg.DagsterInstance.ephemeral()
    sense(full, full_instance, None)
    run_assets(full, full_instance, ["challenge_split", *FOLDS, "feature_matrix"])
    assert feature_matrix_rows(data).equals(feature_matrix_rows(full_data))


FEATURES = {"challenge_split", *FOLDS, "feature_matrix"}


def feature_matrix_rows(data) -> pl.DataFrame:
    with WarehouseDir(data / "warehouse").get_connection() as conn:
        return conn.execute("SELECT * FROM feature_matrix ORDER BY client_id").pl()


@pytest.mark.slow
def test_the_nightly_schedule_takes_a_new_day_in_up_to_the_feature_matrix_in_one_run(
    tiny_release, tmp_path
):
    raw = tmp_path / "raw"
    without_new_day(tiny_release, raw)
    defs = definitions(raw, tmp_path / "data")
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("update_job")
    first_key = job.partitions_def.get_partition_keys()[0]
    days_before = {
        "dagster/asset_partition_range_start": first_key,
        "dagster/asset_partition_range_end": "2022-11-08",
    }
    assert job.execute_in_process(instance=instance, tags=days_before).success
    automation_cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    before = materializations(instance)

    for name in RAW_EVENT_FILES:  # the new day arrives; the schedule ticks the night after
        shutil.copy(tiny_release / f"{name}.parquet", raw / f"{name}.parquet")
    schedule = defs.resolve_schedule_def("daily_schedule")
    tick = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime(2022, 11, 10, 2, tzinfo=dt.UTC),
    )
    (request,) = schedule.evaluate_tick(tick).run_requests
    assert (schedule.job_name, request.partition_key) == ("update_job", NEW_DAY)
    result = job.execute_in_process(instance=instance, partition_key=request.partition_key)
    assert result.success

    new = materializations(instance) - before
    assert set(new) == {(name, NEW_DAY) for name in DAILY} | {(name, None) for name in FEATURES}
    assert all(count == 1 for count in new.values())
    assert len(instance.get_runs()) == 2  # the first build, then one run for the new day
    # Automation finds the features up to date (nothing twice) and hands on to what follows.
    requested = {
        r.key.to_user_string()
        for r in dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=automation_cursor
        ).results
        if r.true_subset.size > 0
    }
    assert "feature_matrix_embeddings" in requested  # it follows the new matrix
    assert not requested & FEATURES

    full_data = tmp_path / "full"
    every_day = {**days_before, "dagster/asset_partition_range_end": NEW_DAY}
    full = definitions(tiny_release, full_data).resolve_job_def("update_job")
    assert full.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=every_day).success
    assert feature_matrix_rows(tmp_path / "data").equals(feature_matrix_rows(full_data))


def test_missing_ranges_are_contiguous_runs_of_absent_days():
    days = [dt.date(2022, 5, d) for d in range(1, 8)]
    have = {"2022-05-03", "2022-05-04"}
    assert missing_ranges(days, have) == [
        ("2022-05-01", "2022-05-02"),
        ("2022-05-05", "2022-05-07"),
    ]
    assert missing_ranges(days, {d.isoformat() for d in days}) == []
