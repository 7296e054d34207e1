from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg2
import pytest

from ubp_assets.postgres import DEFAULT_SERVER, scratch_database
from ubp_assets.synthetic import get_scale, write_release

DEFAULT_REDIS = "redis://127.0.0.1:6379"
EVENT_FILES = ("product_buy", "add_to_cart", "remove_from_cart", "page_visit", "search_query")


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    """A tiny synthetic release, written once; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("tiny_release")
    write_release(get_scale("tiny"), 7, out)
    return out


@pytest.fixture(scope="session")
def demo_release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_release")
    write_release(get_scale("demo"), 2025, out)
    return out


@pytest.fixture
def raw_copy(tiny_release, tmp_path) -> Path:
    """A private copy of the tiny release that a test may damage."""
    dest = tmp_path / "raw"
    shutil.copytree(tiny_release, dest)
    return dest


def read_events(raw: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(raw / f"{name}.parquet") for name in EVENT_FILES}


# The servers CI starts (`.ci/run`): a test that needs one skips without it, unless CI's
# UBP_REQUIRE_POSTGRES=1 / UBP_REQUIRE_REDIS=1 make it fail.


@pytest.fixture
def pg_database() -> Iterator[dict[str, str]]:
    """A fresh database on the server UBP_TEST_POSTGRES names, dropped afterwards; yields the
    DAGSTER_PG_* variables that point at it."""
    url = os.environ.get("UBP_TEST_POSTGRES", DEFAULT_SERVER)
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.OperationalError as e:
        reason = (
            f"no Postgres server at {url} ({' '.join(str(e).split())}); "
            'start one with `eval "$(.ci/start-postgres)"`'
        )
        if os.environ.get("UBP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"UBP_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    with scratch_database(url, "ubp_test") as env:
        yield env


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A database of its own (number 7) on the Redis server UBP_TEST_REDIS names, emptied before
    and after: the celery executor's broker and result backend."""
    import redis

    server = os.environ.get("UBP_TEST_REDIS", DEFAULT_REDIS).rstrip("/")
    url = f"{server}/7"
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as e:
        reason = f'no Redis server at {server} ({e}); start one with `eval "$(.ci/start-redis)"`'
        if os.environ.get("UBP_REQUIRE_REDIS") == "1":
            pytest.fail(f"UBP_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


DEFAULT_S3 = "http://127.0.0.1:5055"


@pytest.fixture
def s3_data(monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh prefix in a bucket on the S3-compatible server UBP_TEST_S3 names (`.ci/start-s3`),
    removed afterwards: yields its URL and the AWS_* variables that reach it, which this process
    has set too (for a worker's environment)."""
    import urllib.error
    import urllib.request

    from ubp_assets.location import loopback_store_env, scratch_prefix

    endpoint = os.environ.get("UBP_TEST_S3", DEFAULT_S3)
    try:
        urllib.request.urlopen(endpoint, timeout=5).close()
    except (urllib.error.URLError, OSError) as e:
        reason = f'no S3 server at {endpoint} ({e}); start one with `eval "$(.ci/start-s3)"`'
        if os.environ.get("UBP_REQUIRE_S3") == "1":
            pytest.fail(f"UBP_REQUIRE_S3=1 but {reason}")
        pytest.skip(reason)
    env = loopback_store_env(endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with scratch_prefix("ubp-test", env) as url:
        yield url, env
