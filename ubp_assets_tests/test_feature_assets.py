"""The feature graph through Dagster: partials, folds and the feature matrix with its checks."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ubp_assets.definitions import load_stage_definitions
from ubp_assets.defs.evaluation.challenge_split import challenge_split
from ubp_assets.defs.events.events import events
from ubp_assets.defs.features.daily_partials import daily_partials
from ubp_assets.defs.features.family_features import family_features
from ubp_assets.defs.features.feature_matrix import MATRIX_CHECKS, feature_matrix
from ubp_assets.features.common import Feature
from ubp_assets.features.matrix import build_feature_matrix, check_stored_matrix
from ubp_assets.features.pipeline import FEATURES
from ubp_assets.resources import FeatureSettings, ScaleSettings, UbpStorage, build_resources
from ubp_assets.shards import client_shards
from ubp_assets.warehouse import WarehouseDir
from ubp_assets_tests.helpers import RANGE_END, RANGE_START, chunk_events_for, failure_message

FIRST, LAST, CUTOFF = "2022-04-14", "2022-05-03", "2022-05-01"
ASSETS = [events, daily_partials, challenge_split, family_features, feature_matrix]


def resources(raw, data, cutoff=CUTOFF):
    """About six days at a time and 300 clients a shard: the 20 days are built in several chunks
    and the 1,000 relevant clients folded in four shards, which the comparisons with the
    in-memory pipeline below then cover."""
    return build_resources(
        UbpStorage(data_dir=str(data), raw_dir=str(raw)),
        FeatureSettings(cutoff=cutoff),
        scale=ScaleSettings(chunk_events=chunk_events_for(raw, 6), clients_per_shard=300),
    )


def run_daily(raw, data, first=FIRST, last=LAST):
    return dg.materialize(
        ASSETS,
        selection=[events, daily_partials],
        resources=resources(raw, data),
        tags={RANGE_START: first, RANGE_END: last},
        instance=dg.DagsterInstance.ephemeral(),
    )


def run_features(raw, data, cutoff=CUTOFF, instance=None):
    return dg.materialize(
        ASSETS,
        selection=[challenge_split, family_features, feature_matrix],
        resources=resources(raw, data, cutoff),
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def recomputed(result) -> dict[str, bool]:
    """Which fold and matrix assets rebuilt their table in this run."""
    materializations = [
        e.event_specific_data.materialization for e in result.get_asset_materialization_events()
    ]
    return {
        m.asset_key.to_user_string(): m.metadata["recomputed"].value
        for m in materializations
        if "recomputed" in m.metadata
    }


@pytest.fixture(scope="module")
def built(tiny_release, tmp_path_factory):
    data = tmp_path_factory.mktemp("features")
    assert run_daily(tiny_release, data).success
    result = run_features(tiny_release, data)
    assert result.success
    return data, result


def test_each_family_is_its_own_group_with_a_partial_and_a_fold():
    graph = load_stage_definitions().resolve_asset_graph()
    for family in ("temporal", "session", "behavioral", "conversion", "advanced", "identity"):
        fold = graph.get(dg.AssetKey(f"{family}_features"))
        assert fold.group_name == family
        partials = {k for k in fold.parent_keys if k.path[0].endswith("_daily")}
        assert partials, family
        for key in partials:
            assert graph.get(key).partitions_def is not None
    assert graph.get(dg.AssetKey("temporal_daily")).group_name == "temporal"


def test_one_family_can_be_materialized_alone(tiny_release, tmp_path):
    """The six partials and the six folds are one step each, and still separate assets: a
    selection of one family's partial and fold writes that family and nothing else."""
    storage = resources(tiny_release, tmp_path)
    days = {RANGE_START: FIRST, RANGE_END: "2022-04-16"}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(ASSETS, selection=[events], resources=storage, tags=days).success
    result = dg.materialize(
        ASSETS,
        selection=["session_daily"],
        resources=storage,
        tags=days,
        instance=instance,
    )
    assert result.success
    assert {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} == {
        "session_daily"
    }
    assert [p.name for p in (tmp_path / "warehouse" / "partials").iterdir()] == ["session_daily"]
    # The fold of the session family needs only its own partial, before the cutoff.
    result = dg.materialize(
        ASSETS,
        selection=["challenge_split", "session_features"],
        resources=resources(tiny_release, tmp_path, cutoff="2022-04-17"),
        instance=instance,
    )
    assert result.success
    folded = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert folded == {"challenge_split", "session_features"}
    with WarehouseDir(tmp_path / "warehouse").get_connection() as conn:
        tables = {t for (t,) in conn.execute("SHOW TABLES").fetchall()}
    assert "session_features" in tables and "temporal_features" not in tables


def test_partials_are_written_per_day(built):
    data, _ = built
    for key in daily_partials.keys:
        name = key.to_user_string()
        days = sorted(p.name for p in (data / "warehouse" / "partials" / name).iterdir())
        assert days[0] == f"date={FIRST}" and days[-1] == f"date={LAST}" and len(days) == 20


def test_feature_matrix_rows_checks_and_metadata(built, tiny_release):
    data, result = built
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["no_nan_or_infinity"].passed
    assert checks["exact_client_set"].passed
    assert "constant_columns" in checks
    mat = result.asset_materializations_for_node("feature_matrix")[0]
    assert mat.metadata["cutoff"].value == CUTOFF
    assert mat.metadata["dagster/row_count"].value == 1_000
    assert "data:image/png;base64," in mat.metadata["distributions"].value
    assert (data / "reports" / "feature_matrix.png").stat().st_size > 10_000
    schema = mat.metadata["dagster/column_schema"].value
    families = {c.description.split(":")[0] for c in schema.columns[1:]}
    assert families == {"temporal", "session", "behavioral", "conversion", "advanced", "identity"}
    scaler = pl.read_parquet(data / "warehouse" / "feature_matrix" / "scaler.parquet")
    assert scaler.height == len(schema.columns) - 1

    with WarehouseDir(data / "warehouse").get_connection() as conn:
        ids = conn.execute("SELECT client_id FROM feature_matrix").fetchnumpy()["client_id"]
        width = len(conn.execute("SELECT * FROM feature_matrix LIMIT 1").description)
    relevant = np.load(tiny_release / "input" / "relevant_clients.npy")
    assert sorted(ids.tolist()) == sorted(relevant.tolist())
    assert width == len(schema.columns)


def test_a_fold_names_the_missing_days(tiny_release, tmp_path):
    assert run_daily(tiny_release, tmp_path).success
    missing = tmp_path / "warehouse" / "partials" / "session_daily" / "date=2022-04-20"
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()
    result = run_features(tiny_release, tmp_path)
    assert not result.success
    assert "session_daily lacks 1 day(s) before the cutoff 2022-05-01 (2022-04-20)" in (
        failure_message(result)
    )


def test_features_do_not_change_when_days_after_the_cutoff_change(tiny_release, tmp_path, built):
    """Rebuild the days after the cutoff from different raw data: the folds stay the same."""
    data, _ = built
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(tiny_release, raw)
    path = raw / "page_visit.parquet"
    visits = pl.read_parquet(path)
    pl.concat([visits, visits.filter(pl.col("timestamp") >= "2022-05-01").head(300)]).with_columns(
        pl.col("client_id").shuffle(seed=1)
    ).filter(pl.col("timestamp") >= "2022-05-01").vstack(
        visits.filter(pl.col("timestamp") < "2022-05-01")
    ).write_parquet(path)
    other = tmp_path / "data"
    shutil.copytree(data, other, ignore=shutil.ignore_patterns("tables"))
    assert run_daily(raw, other, "2022-05-01", LAST).success
    assert run_features(raw, other).success

    for family in ("temporal", "session", "identity"):
        query = f"SELECT * FROM {family}_features ORDER BY client_id"
        with WarehouseDir(data / "warehouse").get_connection() as conn:
            before = conn.execute(query).pl()
        with WarehouseDir(other / "warehouse").get_connection() as conn:
            after = conn.execute(query).pl()
        assert before.equals(after), family


def test_unchanged_inputs_keep_the_stored_tables(tiny_release, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    assert run_daily(tiny_release, tmp_path).success
    first = run_features(tiny_release, tmp_path, instance=instance)
    assert set(recomputed(first).values()) == {True}
    again = run_features(tiny_release, tmp_path, instance=instance)
    assert again.success and set(recomputed(again).values()) == {False}
    # The matrix's checks report what the scan after its last write found, and say so.
    scanned = {e.check_name: e for e in first.get_asset_check_evaluations()}
    reported = {e.check_name: e for e in again.get_asset_check_evaluations()}
    assert set(reported) == set(MATRIX_CHECKS)
    for name, evaluation in reported.items():
        assert evaluation.passed == scanned[name].passed
        assert evaluation.metadata["scanned_now"].value is False
        assert scanned[name].metadata["scanned_now"].value is True
        figures = {k: v.value for k, v in evaluation.metadata.items() if k != "scanned_now"}
        assert figures == {
            k: v.value for k, v in scanned[name].metadata.items() if k != "scanned_now"
        }
    assert reported["exact_client_set"].passed
    assert reported["exact_client_set"].metadata["rows"].value == 1_000
    # A partial day before the cutoff is rewritten: its families and the matrix are rebuilt.
    partials = tmp_path / "warehouse" / "partials"
    day = partials / "temporal_daily" / "date=2022-04-20" / "data.parquet"
    pl.read_parquet(day).head(3).write_parquet(day)
    # Another is rewritten with the same rows: a rewrite is a change, whatever its content.
    same = partials / "session_daily" / "date=2022-04-21" / "data.parquet"
    pl.read_parquet(same).write_parquet(same)
    third = run_features(tiny_release, tmp_path, instance=instance)
    flags = recomputed(third)
    assert flags["temporal_features"] and flags["feature_matrix"]
    assert flags["session_features"] and flags["conversion_features"]
    assert not flags["identity_features"] and not flags["behavioral_features"]
    assert all(e.metadata["scanned_now"].value for e in third.get_asset_check_evaluations())


# ---- the matrix's fill and scaling rules, in isolation -------------------------------------------


def test_fill_rules_scaling_and_constant_columns():
    features = {
        "count": Feature("f", "a count", "zero"),
        "rate": Feature("f", "a rate", "median"),
        "days": Feature("f", "days since", "span"),
        "flat": Feature("f", "always 1", "median"),
        "undefined": Feature("f", "never defined", "median"),
    }
    table = pl.DataFrame(
        {
            "client_id": [1, 2, 3, 4],
            "count": [1.0, 10.0, 1000.0, None],
            "rate": [0.1, 0.3, None, 0.5],
            "days": [3.0, 5.0, 7.0, None],
            "flat": [1.0, 1.0, 1.0, 1.0],
            "undefined": [float("nan"), None, float("nan"), None],
        }
    )
    built = build_feature_matrix(np.array([4, 1, 2, 3, 5]), [table], features, span_days=100)
    m = built.matrix
    assert m["client_id"].to_list() == [4, 1, 2, 3, 5]  # the relevant order, client 5 has no row
    assert m.schema["count"] == pl.Float32
    fills = dict(zip(built.scaler["feature"], built.scaler["fill_value"], strict=True))
    assert fills["count"] == 0 and fills["days"] == 100 and fills["rate"] == pytest.approx(0.3)
    assert (
        m.filter(pl.col("client_id") == 5)["rate"][0]
        == m.filter(pl.col("client_id") == 2)["rate"][0]
    )
    assert m.drop("client_id").to_numpy().max() <= 5 and m.drop("client_id").to_numpy().min() >= -5
    checks = check_stored_matrix(m.lazy(), np.array([1, 2, 3, 4, 5]))
    assert checks.constant == ["flat", "undefined"]
    assert checks.exact_client_set and checks.non_finite == 0
    assert np.isfinite(m.drop("client_id").to_numpy()).all()


def test_stored_matrix_checks_fail_on_a_matrix_built_to_fail():
    frame = pl.DataFrame(
        {
            "client_id": [1, 2, 2],
            "a": [0.5, float("nan"), 1.0],
            "b": [float("inf"), None, 0.0],
            "c": [2.0, 2.0, 2.0],
        }
    )
    checks = check_stored_matrix(frame.lazy(), np.array([1, 2, 3]))
    assert checks.non_finite == 3
    assert not checks.exact_client_set and checks.rows == 3 and checks.distinct_clients == 2
    assert checks.constant == ["c"]


def test_unregistered_columns_are_refused():
    with pytest.raises(ValueError, match="without a registered feature"):
        build_feature_matrix(
            np.array([1]), [pl.DataFrame({"client_id": [1], "mystery": [1.0]})], {}, 10
        )


def test_client_shards_cover_the_relevant_clients_once():
    ids = np.random.default_rng(0).choice(10**9, 1_001, replace=False)
    shards = client_shards(ids, 300)
    assert [s.clients for s in shards] == [251, 250, 250, 250]
    owners = [[s.index for s in shards if s.first <= i <= s.last] for i in ids]
    assert all(len(o) == 1 for o in owners)  # every client in exactly one shard
    assert client_shards(ids[::-1], 300) == shards  # a function of the set, not of its order
    assert len(client_shards(ids, 2_000)) == 1


def test_stored_partials_and_tables_equal_the_in_memory_pipeline(built, tiny_release):
    """The assets wire the pure functions faithfully: same partials, same family tables, the
    tables folded in four client shards equal to one fold over every client."""
    import datetime as dt

    from ubp_assets.events.raw_reader import read_products
    from ubp_assets.events.table import scan_events
    from ubp_assets.features.pipeline import compute_partials, fold_families
    from ubp_assets.storage import scan_days

    data, result = built
    sharded = [
        e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if "client_shards" in e.event_specific_data.materialization.metadata
    ]
    assert len(sharded) == 7 and {m["client_shards"].value for m in sharded} == {4}
    relevant = pl.Series(np.load(tiny_release / "input" / "relevant_clients.npy"))
    names = read_products(tiny_release).rows.select("sku", "name").lazy()
    events = scan_events(data / "warehouse" / "events")
    expected = compute_partials(events, names, relevant)
    for name, frame in expected.items():
        stored = scan_days(data / "warehouse" / "partials" / name).collect().select(frame.columns)
        keys = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
        assert stored.sort(keys).equals(frame.sort(keys)), name
    tables = fold_families(expected, dt.date.fromisoformat(CUTOFF))
    with WarehouseDir(data / "warehouse").get_connection() as conn:
        for family, table in tables.items():
            wanted = table.filter(pl.col("client_id").is_in(relevant.implode()))
            stored = conn.execute(f"SELECT * FROM {family}_features ORDER BY client_id").pl()
            assert stored.columns == wanted.columns, family
            assert stored.equals(wanted), family
        stored_matrix = conn.execute("SELECT * FROM feature_matrix ORDER BY client_id").pl()
    # The matrix in four shards, its scaler fitted 100 columns at a time: the unsharded one.
    span = (dt.date.fromisoformat(CUTOFF) - dt.date.fromisoformat(FIRST)).days
    whole = build_feature_matrix(relevant.to_numpy(), list(tables.values()), FEATURES, span)
    assert stored_matrix.equals(whole.matrix.sort("client_id"))
    scaler = pl.read_parquet(data / "warehouse" / "feature_matrix" / "scaler.parquet")
    assert scaler.equals(whole.scaler)


def test_folds_give_identical_tables_whatever_the_row_order(built):
    """Float sums are exact in any order, so neither row order nor threads change a last bit."""
    import datetime as dt

    from ubp_assets.features.pipeline import PARTIALS, fold_families
    from ubp_assets.storage import scan_days

    data, _ = built
    partials = {
        name: scan_days(data / "warehouse" / "partials" / name).collect() for name in PARTIALS
    }
    cutoff = dt.date.fromisoformat(CUTOFF)
    first = fold_families(partials, cutoff)
    for seed in range(3):
        again = fold_families(
            {k: v.sample(fraction=1.0, shuffle=True, seed=seed) for k, v in partials.items()},
            cutoff,
        )
        for family, table in first.items():
            assert again[family].equals(table), family
