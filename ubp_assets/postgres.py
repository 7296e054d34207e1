"""Scratch databases on a Postgres server, for the tests and the workers benchmark: each run of
them gets a database of its own and the DAGSTER_PG_* variables that point Dagster's instance at
it (`instance.postgres_instance_yaml`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql
from psycopg2.errors import InsufficientPrivilege
from psycopg2.extensions import parse_dsn

DEFAULT_SERVER = "postgresql://ubp:ubp@127.0.0.1:5432/postgres"  # what .ci/start-postgres starts


def dagster_pg_env(url: str, database: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables for `database` on the server of `url`."""
    dsn = parse_dsn(url)
    return {
        "DAGSTER_PG_HOST": dsn.get("host", "127.0.0.1"),
        "DAGSTER_PG_PORT": dsn.get("port", "5432"),
        "DAGSTER_PG_USER": dsn["user"],
        "DAGSTER_PG_PASSWORD": dsn.get("password", ""),
        "DAGSTER_PG_DB": database,
    }


@contextmanager
def scratch_database(url: str, prefix: str) -> Iterator[dict[str, str]]:
    """A fresh database on the server of `url` (its role needs CREATEDB), dropped afterwards;
    yields its DAGSTER_PG_* variables. A server that does not answer raises
    psycopg2.OperationalError before anything is created."""
    admin = psycopg2.connect(url, connect_timeout=5)
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield dagster_pg_env(url, name)
        finally:
            _drop_database(admin, name)
    finally:
        admin.close()


def _drop_database(admin, name: str, attempts: int = 20) -> None:
    """DROP ... WITH (FORCE), since Dagster's pooled connections may linger. A session this role
    may not end ("must be a member of the role whose process is being terminated", seen once in
    CI; most likely an autovacuum worker on the new database) ends by itself: wait, try again."""
    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(attempts):
        try:
            with admin.cursor() as cur:
                cur.execute(drop)
            return
        except InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
