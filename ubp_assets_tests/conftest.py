from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from ubp_assets.synthetic import get_scale, write_release

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
