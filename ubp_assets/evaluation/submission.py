"""Embeddings in the challenge's submission format, and the organisers' rules for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ubp_assets import location
from ubp_assets.location import AnyPath

MAX_EMBEDDING_DIM = 2048
CLIENT_IDS = "client_ids.npy"
EMBEDDINGS = "embeddings.npy"


class SubmissionWriter:
    """A submission written a block of rows at a time (one client shard, say), appended to an
    embeddings.npy file, so that a 1M-client folder is never held whole (nor mapped: the pages
    of a memory map would count in the process's resident memory); the folder's files are
    replaced only by `commit`, after the last block. Refuses blocks that break the format rules,
    so a bad method fails where it is built."""

    def __init__(self, folder: AnyPath, rows: int, dims: int) -> None:
        location.make_dir(folder)
        self.folder, self.rows, self.dims, self._filled, self._ids = folder, rows, dims, 0, []
        # An object store's upload is seen only when it completes: no temporary name to rename.
        local = location.is_local(folder)
        self._temp = folder / (f".{EMBEDDINGS}.tmp" if local else EMBEDDINGS)
        self._file = self._temp.open("wb")  # closed by commit
        header = {"descr": np.dtype(np.float16).str, "fortran_order": False, "shape": (rows, dims)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def write(self, client_ids: np.ndarray, embeddings: np.ndarray) -> None:
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dims:
            raise ValueError(f"embeddings must be rows of {self.dims}, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings hold NaN or infinity")
        with np.errstate(over="ignore"):
            half = vectors.astype(np.float16)
        if not np.isfinite(half).all():
            raise ValueError("embeddings overflow float16 (|value| > 65504)")
        if self._filled + len(half) > self.rows:
            raise ValueError(f"more than the {self.rows} rows announced")
        self._file.write(np.ascontiguousarray(half).tobytes())
        self._ids.append(np.asarray(client_ids, dtype=np.int64))
        self._filled += len(half)

    def commit(self) -> None:
        if self._filled != self.rows:
            raise ValueError(f"{self._filled} of {self.rows} rows written")
        self._file.close()
        location.save_npy(self.folder / CLIENT_IDS, np.concatenate(self._ids))
        if location.is_local(self.folder):
            os.replace(self._temp, self.folder / EMBEDDINGS)


def write_submission(folder: AnyPath, client_ids: np.ndarray, embeddings: np.ndarray) -> None:
    """client_ids.npy (int64) and embeddings.npy (float16), rows aligned, in one block."""
    vectors = np.asarray(embeddings)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (one row per client), got {vectors.ndim}-D")
    writer = SubmissionWriter(folder, len(vectors), vectors.shape[1])
    writer.write(client_ids, vectors)
    writer.commit()


def read_submission(folder: AnyPath) -> tuple[np.ndarray, np.ndarray]:
    return location.load_npy(folder / CLIENT_IDS), location.load_npy(folder / EMBEDDINGS)


@dataclass(frozen=True)
class StoredEmbeddings:
    """An embeddings.npy file known by its header, its rows read a block at a time by plain
    reads: a 1M-client file is never held whole, nor mapped (a memory map's pages would count in
    the process's resident memory)."""

    path: AnyPath
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the rows start

    @classmethod
    def open(cls, path: AnyPath) -> StoredEmbeddings:
        path = location.as_path(path)
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(handle)
            return cls(path, shape, dtype, fortran_order, handle.tell())

    def blocks(self, rows: int = 65_536) -> Iterator[np.ndarray]:
        """The rows in blocks of `rows` (a column-major or object file: whole, as np.load reads
        it)."""
        if self.fortran_order or self.dtype.hasobject or len(self.shape) < 1:
            yield location.load_npy(self.path)
            return
        per_row = int(np.prod(self.shape[1:], dtype=np.int64))
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            for start in range(0, self.shape[0], rows):
                count = min(rows, self.shape[0] - start)
                # plain reads, not np.fromfile: an object store's file has no descriptor
                data = handle.read(count * per_row * self.dtype.itemsize)
                block = np.frombuffer(data, dtype=self.dtype)
                yield block.reshape((count, *self.shape[1:]))

    def head(self, rows: int) -> np.ndarray:
        empty = np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return next(self.blocks(rows), empty)[:rows]

    def nonfinite(self) -> int:
        """How many values are NaN or infinite (0 for a non-float file)."""
        return sum(_nonfinite(block) for block in self.blocks())


def _nonfinite(values: np.ndarray) -> int:
    if not np.issubdtype(values.dtype, np.floating):
        return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def _rule_breaks(
    client_ids: np.ndarray,
    embeddings: np.ndarray | StoredEmbeddings,
    relevant: np.ndarray,
    max_dim: int,
    guarded: bool,
) -> list[tuple[str, list[str]]]:
    """The organisers' rules, each broken one as (submission_problems' message, folder messages).

    embeddings is an array or a stored file, read a block at a time. guarded skips the checks
    that compare ids when client_ids is not a 1-D integer array: on arbitrary files they would be
    meaningless (float or string ids) or crash (a 0-d array).
    """
    breaks: list[tuple[str, list[str]]] = []
    ids_name, vectors_name = CLIENT_IDS, EMBEDDINGS
    if client_ids.dtype != np.int64 or client_ids.ndim != 1:
        got = f"{client_ids.ndim}-D {client_ids.dtype}"
        breaks.append(
            (
                f"client_ids must be 1-D int64, got {got}",
                [f"{ids_name}: must be a 1-D int64 array, got {got}"],
            )
        )
    if embeddings.dtype != np.float16:
        breaks.append(
            (
                f"embeddings must be float16, got {embeddings.dtype}",
                [f"{vectors_name}: must be float16, got {embeddings.dtype}"],
            )
        )
    countable = not guarded or client_ids.ndim >= 1
    comparable = not guarded or (client_ids.ndim == 1 and client_ids.dtype.kind in "iu")
    shape = embeddings.shape
    if len(shape) != 2:
        breaks.append(
            (
                f"embeddings must be 2-D, got {len(shape)}-D",
                [f"{vectors_name}: must be 2-D (one row per client), got {len(shape)}-D"],
            )
        )
    else:
        rows, dims = shape
        if dims > max_dim:
            breaks.append(
                (
                    f"{dims} dimensions, at most {max_dim} allowed",
                    [f"{vectors_name}: {dims} dimensions, at most {max_dim} allowed"],
                )
            )
        if countable and rows != len(client_ids):
            breaks.append(
                (
                    f"{rows} embedding rows for {len(client_ids)} clients",
                    [
                        f"{vectors_name}: {rows} rows for the {len(client_ids)} ids in "
                        f"{ids_name}, expected one row per id"
                    ],
                )
            )
    bad = (
        embeddings.nonfinite()
        if isinstance(embeddings, StoredEmbeddings)
        else _nonfinite(np.asarray(embeddings))
    )
    if bad:
        breaks.append(
            (
                f"{bad} NaN or infinite values",
                [f"{vectors_name}: {bad} NaN or infinite values, expected finite values only"],
            )
        )
    if not comparable:
        return breaks
    unique = np.unique(client_ids)
    if len(unique) != len(client_ids):
        repeated = len(client_ids) - len(unique)
        breaks.append(
            (
                f"{repeated} duplicated client ids",
                [f"{ids_name}: {repeated} duplicated ids, expected each client once"],
            )
        )
    missing = np.setdiff1d(relevant, unique)
    extra = np.setdiff1d(unique, relevant)
    if len(missing) or len(extra):
        folder_messages = []
        if len(missing):
            folder_messages.append(
                f"{ids_name}: {len(missing)} relevant clients missing, expected every relevant "
                f"client (e.g. {missing[0]})"
            )
        if len(extra):
            folder_messages.append(
                f"{ids_name}: {len(extra)} clients that are not relevant, expected only the "
                f"relevant clients (e.g. {extra[0]})"
            )
        breaks.append(
            (
                f"not the relevant clients: {len(missing)} missing, {len(extra)} not relevant",
                folder_messages,
            )
        )
    return breaks


def submission_problems(
    client_ids: np.ndarray,
    embeddings: np.ndarray | StoredEmbeddings,
    relevant: np.ndarray,
    max_dim: int = MAX_EMBEDDING_DIM,
) -> list[str]:
    """Every way the pair breaks the organisers' rules (empty when it is valid); the embeddings
    in memory or in their file (`StoredEmbeddings`, read a block at a time)."""
    return [
        message
        for message, _ in _rule_breaks(client_ids, embeddings, relevant, max_dim, guarded=False)
    ]


_NPY_MAGIC = b"\x93NUMPY"


def _load_plain_array(path: Path) -> tuple[np.ndarray | None, str | None]:
    """The array in a .npy file, or why there is none; never unpickles anything."""
    name = path.name
    if not path.exists():
        return None, f"{name}: missing, expected a .npy file saved with numpy.save"
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            return None, (
                f"{name}: not a .npy file (it does not start with the NumPy format's magic "
                "bytes), expected a file saved with numpy.save"
            )
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        # Object arrays are refused here: unpickling a participant's file could run any code.
        return None, (
            f"{name}: cannot be loaded with allow_pickle=False ({type(error).__name__}: "
            f"{error}), expected a plain numeric array saved with numpy.save"
        )
    return array, None


def folder_problems(
    folder: Path, relevant: np.ndarray, max_dim: int = MAX_EMBEDDING_DIM
) -> list[str]:
    """Every way a participant's submission folder breaks the rules (empty when it is valid).

    The folder must hold client_ids.npy and embeddings.npy, both loadable without pickle; the
    pair is then checked against the same rules as submission_problems, and each message names
    the file it is about. The array rules are checked only once both files load.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        return [f"{folder}: {what}, expected a folder holding {CLIENT_IDS} and {EMBEDDINGS}"]
    client_ids, ids_problem = _load_plain_array(folder / CLIENT_IDS)
    embeddings, vectors_problem = _load_plain_array(folder / EMBEDDINGS)
    problems = [p for p in (ids_problem, vectors_problem) if p is not None]
    if client_ids is None or embeddings is None:
        return problems
    breaks = _rule_breaks(client_ids, embeddings, np.asarray(relevant), max_dim, guarded=True)
    return [message for _, messages in breaks for message in messages]
