"""The Dagster instance configurations this project ships, as `DAGSTER_HOME/dagster.yaml` texts.

Local runs use SQLite (Dagster's default storage, so no `storage` key); when several runs, the
daemon and the UI write at once, `postgres_instance_yaml()` moves Dagster's storage to Postgres.
Both keep the same concurrency settings.
"""

from __future__ import annotations

from pathlib import Path

PG_ENV_VARS = {
    "hostname": "DAGSTER_PG_HOST",
    "username": "DAGSTER_PG_USER",
    "password": "DAGSTER_PG_PASSWORD",
    "db_name": "DAGSTER_PG_DB",
    "port": "DAGSTER_PG_PORT",
}

LOCAL_INSTANCE_YAML = """\
# No usage statistics leave the machine.
telemetry:
  enabled: false
concurrency:
  runs:
    # A backfill queues one run per day; a few at once keep a laptop responsive.
    max_concurrent_runs: 4
  pools:
    # heavy_steps (a chunk of days or a shard of clients each): one at a time keeps memory to
    # one step's; a cluster with memory to spare raises it.
    default_limit: 1
# The daemon ends runs stuck starting or canceling and frees the pool slots of runs that have
# ended (a run whose process was killed keeps its slot until something does). `ubp run` ends
# its own dead runs itself before it starts (ubp_assets/runs.py).
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  free_slots_after_run_end_seconds: 30
"""


def postgres_instance_yaml() -> str:
    """The local settings plus Postgres storage (runs, event logs, schedules); the connection is
    read from DAGSTER_PG_* environment variables when the instance loads, so no secret is
    written to the file."""
    lines = [
        "# Runs, event logs and schedules in Postgres: many processes can write at once.",
        "storage:",
        "  postgres:",
        "    postgres_db:",
        *(f"      {key}: {{env: {var}}}" for key, var in PG_ENV_VARS.items()),
        "      # The driver dagster-postgres installs; SQLAlchemy 2.1 maps a bare postgresql://",
        "      # to psycopg 3, which is not installed.",
        "      scheme: postgresql+psycopg2",
    ]
    return LOCAL_INSTANCE_YAML + "\n".join(lines) + "\n"


def write_instance_yaml(home: Path, postgres: bool = False, overwrite: bool = False) -> Path:
    """Write `home/dagster.yaml` (creating `home`) and return its path. An existing file is left
    as it is unless `overwrite`: it may be the user's own configuration."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if overwrite or not path.exists():
        path.write_text(postgres_instance_yaml() if postgres else LOCAL_INSTANCE_YAML)
    return path


if __name__ == "__main__":  # python -m ubp_assets.instance [--postgres] DAGSTER_HOME
    import argparse

    parser = argparse.ArgumentParser(description="Write DAGSTER_HOME/dagster.yaml, if absent.")
    parser.add_argument("home", type=Path)
    parser.add_argument(
        "--postgres", action="store_true", help="storage in Postgres (DAGSTER_PG_*)"
    )
    args = parser.parse_args()
    print(write_instance_yaml(args.home, postgres=args.postgres))
