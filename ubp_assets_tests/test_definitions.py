"""The code location loads fast and every asset reads well in the UI."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from ubp_assets.definitions import load_stage_definitions

defs = load_stage_definitions()


def test_definitions_load_without_heavy_imports_warnings_or_touching_the_disk(tmp_path):
    code = (
        "import sys, warnings, pathlib\n"
        "warnings.simplefilter('error')\n"
        "import ubp_assets.definitions as d\n"
        "d.load_stage_definitions().resolve_asset_graph()\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules\n"
        f"assert not pathlib.Path({str(tmp_path / 'data')!r}).exists()\n"
    )
    env = {**os.environ, "UBP_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_lineage_runs_from_synthetic_raw_through_raw_files_to_events():
    graph = defs.resolve_asset_graph()
    events = graph.get(dg.AssetKey("events"))
    raw_keys = {k for k in events.parent_keys if k.path[0] == "raw"}
    assert {k.path[1] for k in raw_keys} == {
        "product_buy",
        "add_to_cart",
        "remove_from_cart",
        "page_visit",
        "search_query",
        "product_properties",
    }
    for key in raw_keys:
        node = graph.get(key)
        assert node.is_observable and not node.is_materializable
        assert node.parent_keys == {dg.AssetKey("synthetic_raw")}


def test_every_materializable_asset_is_described_grouped_versioned_and_kinded():
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        assert node.description, key
        assert node.group_name != "default", key
        assert node.code_version, key
        assert node.kinds, key


def test_the_lineage_reaches_probe_scores_from_the_raw_files_through_every_stage():
    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey("probe_scores")).parent_keys
    for name in (
        "targets",
        "random_embeddings",
        "aggregated_baseline_embeddings",
        "feature_matrix_embeddings",
        "user_embeddings",
    ):
        assert dg.AssetKey(name) in upstream, name
    ancestors = graph.upstream_key_iterator(dg.AssetKey("probe_scores"))
    names = {k.to_user_string() for k in ancestors}
    for name in ("raw/product_buy", "events", "feature_matrix", "hparam_study", "autoencoder"):
        assert name in names, name
    assert graph.get(dg.AssetKey("autoencoder")).group_name == "model"


def test_jobs_exist():
    jobs = (
        "synthetic_raw_job",
        "observe_raw_job",
        "daily_job",
        "update_job",
        "features_job",
        "embeddings_job",
    )
    for name in jobs:
        assert defs.resolve_job_def(name) is not None


def test_a_new_day_runs_in_one_process():
    """The nightly run's five steps are small; a process per step (Dagster's default executor)
    made a new day at the tenth scale cost 44 s instead of 6 to 9 s."""
    job = defs.resolve_job_def("update_job")
    assert job.executor_def is dg.in_process_executor
    schedule = defs.resolve_schedule_def("daily_schedule")
    assert schedule.job_name == "update_job"


def test_the_executor_is_dagsters_multiprocess_one_unless_celery_is_asked_for():
    import pytest
    import yaml

    from ubp_assets.executors import celery_config, executor_from_env, worker_yaml

    assert executor_from_env({}) is None  # Dagster's default
    assert defs.resolve_job_def("daily_job").executor_def.name == "multi_or_in_process_executor"
    env = {"UBP_EXECUTOR": "celery", "UBP_CELERY_BROKER": "redis://queue.example:6379/2"}
    celery = executor_from_env(env)
    assert celery.name == "celery"
    assert celery_config(env) == {
        "broker": env["UBP_CELERY_BROKER"],
        "backend": env["UBP_CELERY_BROKER"],
    }
    # the workers read the executor's own config, so the two name one broker
    assert yaml.safe_load(worker_yaml(env)) == {"execution": {"config": celery_config(env)}}
    with pytest.raises(ValueError, match="'multiprocess', 'celery'"):
        executor_from_env({"UBP_EXECUTOR": "k8s"})


def test_no_asset_loads_an_input_through_an_io_manager():
    """Tables are written and read with ubp_assets.warehouse alone: one way to store a table.
    Every dependency is a dependency only (its input type is Nothing)."""
    graph = defs.resolve_asset_graph()
    loaded = {
        a.node_def.name: name
        for a in graph.assets_defs
        if a.is_executable
        for name in a.keys_by_input_name
        if not a.node_def.input_def_named(name).dagster_type.is_nothing
    }
    assert loaded == {}
