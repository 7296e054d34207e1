"""Where the data lives: a local folder or an S3-compatible object store (`s3://bucket/prefix`),
behind one path type (universal-pathlib's `UPath`, a `pathlib.Path` where the folder is local),
so that every reader and writer takes either.

The object store's endpoint and keys come from the standard AWS variables (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ALLOW_HTTP=true for a plain-http test
server), which s3fs, polars and DuckDB's own readers all take: nothing is configured twice.
Writes are atomic either way: a local file is written under a temporary name and renamed, an
object is one PUT, which readers see whole or not at all.
"""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

AnyPath = Path | UPath


def data_location(url: str | Path) -> AnyPath:
    """A local folder (made absolute) or an object store's URL (`s3://bucket/prefix`)."""
    text = str(url)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://")).expanduser().resolve()
    # Without a listings cache: other processes (workers) add files this one must see.
    options = {"use_listings_cache": False} if text.startswith(("s3://", "s3a://")) else {}
    return UPath(text, **options)


def as_path(path: str | AnyPath) -> AnyPath:
    """A path given as text (a folder or a URL) as a path; a path as it is."""
    return data_location(path) if isinstance(path, str) else path


def is_local(path: AnyPath) -> bool:
    return isinstance(path, Path)


def as_arg(path: AnyPath) -> str:
    """The path as polars and pyarrow take it: a file name, or the object's URL."""
    return str(path)


def make_dir(path: AnyPath) -> None:
    """A folder where there are folders; an object store has none to make."""
    if is_local(path):
        path.mkdir(parents=True, exist_ok=True)


def _replace_locally(path: Path, write: Callable[[Path], object]) -> None:
    """`write` to a temporary name beside `path`, then rename it into place."""
    make_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def write_bytes(path: AnyPath, data: bytes) -> None:
    if is_local(path):
        _replace_locally(path, lambda tmp: tmp.write_bytes(data))
    else:
        path.write_bytes(data)


def write_text(path: AnyPath, text: str) -> None:
    write_bytes(path, text.encode())


def write_parquet(frame: pl.DataFrame, path: AnyPath, **options: Any) -> None:
    if is_local(path):
        _replace_locally(path, lambda tmp: frame.write_parquet(tmp, **options))
    else:
        frame.write_parquet(as_arg(path), **options)


def scan_parquet(paths: AnyPath | list[AnyPath], **options: Any) -> pl.LazyFrame:
    listed = [as_arg(p) for p in paths] if isinstance(paths, list) else as_arg(paths)
    return pl.scan_parquet(listed, **options)


def read_parquet(path: AnyPath, **options: Any) -> pl.DataFrame:
    return pl.read_parquet(as_arg(path), **options)


def save_npy(path: AnyPath, array: Any) -> None:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getvalue())


def load_npy(path: AnyPath) -> Any:
    import numpy as np

    if is_local(path):
        return np.load(path)
    with path.open("rb") as handle:
        return np.load(io.BytesIO(handle.read()))


def remove_tree(path: AnyPath) -> None:
    """The folder and everything under it, if it is there."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def loopback_store_env(endpoint: str, key: str = "ubp-test") -> dict[str, str]:
    """The AWS_* variables that reach a test server at `endpoint` (`.ci/start-s3`'s)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": key,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


@contextmanager
def scratch_prefix(bucket: str, env: Mapping[str, str]) -> Iterator[str]:
    """A fresh `s3://bucket/<random>` on the store the AWS_* variables `env` name (the bucket
    made if missing), removed afterwards: for the tests and the benchmarks."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=env.get("AWS_ENDPOINT_URL"),
        use_listings_cache=False,  # no region: s3fs would name it as the bucket's constraint
    )
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    prefix = f"{bucket}/{uuid.uuid4().hex[:12]}"
    try:
        yield f"s3://{prefix}"
    finally:
        if fs.exists(prefix):
            fs.rm(prefix, recursive=True)
