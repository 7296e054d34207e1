"""The instance configurations `ubp_assets.instance` ships: the local SQLite one, and the Postgres
one against a real server, where a materialization must land in Postgres' own tables.

Start a server with `eval "$(.ci/start-postgres)"`; without one the Postgres test skips, unless
UBP_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import dagster as dg
import psycopg2
import yaml

from ubp_assets.instance import (
    LOCAL_INSTANCE_YAML,
    PG_ENV_VARS,
    postgres_instance_yaml,
    write_instance_yaml,
)
from ubp_assets_tests.helpers import materialize_events

DAY = "2022-04-14"


def test_write_instance_yaml_never_overwrites_unless_asked(tmp_path):
    home = tmp_path / "home"
    path = write_instance_yaml(home)
    assert path == home / "dagster.yaml"
    assert path.read_text() == LOCAL_INSTANCE_YAML
    path.write_text("telemetry:\n  enabled: true\n")  # the user's own
    assert write_instance_yaml(home, postgres=True) == path
    assert path.read_text() == "telemetry:\n  enabled: true\n"
    write_instance_yaml(home, postgres=True, overwrite=True)
    assert path.read_text() == postgres_instance_yaml()


def test_the_local_instance_is_sqlite_with_one_warehouse_writer(tmp_path):
    home = write_instance_yaml(tmp_path / "home").parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert not instance.telemetry_enabled
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config.max_concurrent_runs == 4


def test_the_postgres_yaml_reads_every_connection_setting_from_the_environment():
    config = yaml.safe_load(postgres_instance_yaml())
    db = config.pop("storage")["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # not psycopg 3, SQLAlchemy 2.1's default
    assert db == {key: {"env": var} for key, var in PG_ENV_VARS.items()}
    assert config == yaml.safe_load(LOCAL_INSTANCE_YAML)


def test_a_materialization_lands_in_postgres(pg_database, tiny_release, tmp_path, monkeypatch):
    for var, value in pg_database.items():
        monkeypatch.setenv(var, value)
    home = write_instance_yaml(tmp_path / "home", postgres=True).parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = materialize_events(tiny_release, tmp_path / "data", DAY, instance=instance)
        assert result.success
        latest = instance.get_latest_materialization_event(dg.AssetKey("events"))
        assert latest is not None
        assert latest.run_id == result.run_id
        assert latest.asset_materialization.partition == DAY

    conn = psycopg2.connect(
        host=pg_database["DAGSTER_PG_HOST"],
        port=pg_database["DAGSTER_PG_PORT"],
        user=pg_database["DAGSTER_PG_USER"],
        password=pg_database["DAGSTER_PG_PASSWORD"],
        dbname=pg_database["DAGSTER_PG_DB"],
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
            assert cur.fetchall() == [("SUCCESS",)]
            cur.execute(
                "SELECT asset_key, partition FROM event_logs"
                " WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (result.run_id,),
            )
            assert cur.fetchall() == [('["events"]', DAY)]
    finally:
        conn.close()
