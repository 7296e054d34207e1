"""Cheap fingerprints of the release's files, so that a changed file makes its dependants stale."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq


@dataclass(frozen=True)
class FileState:
    path: Path
    exists: bool
    size: int = 0
    modified_ns: int = 0
    rows: int | None = None

    @property
    def fingerprint(self) -> str:
        """Size, modification time and row count, hashed: no need to read gigabytes of data."""
        if not self.exists:
            return "missing"
        text = f"{self.size}:{self.modified_ns}:{self.rows}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_state(path: str | Path) -> FileState:
    path = Path(path)
    if not path.is_file():
        return FileState(path=path, exists=False)
    stat = path.stat()
    rows = None
    if path.suffix == ".parquet":
        try:
            rows = pq.read_metadata(path).num_rows
        except (
            Exception
        ):  # an unreadable file still gets a fingerprint; reading it will fail loudly
            rows = None
    return FileState(
        path=path, exists=True, size=stat.st_size, modified_ns=stat.st_mtime_ns, rows=rows
    )
