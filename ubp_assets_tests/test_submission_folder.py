"""folder_problems: one clear message per broken rule of a participant's submission folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ubp_assets.evaluation.submission import folder_problems, write_submission

RELEVANT = np.array([1, 2, 3], dtype=np.int64)


def save(folder: Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """Writes the two files as given, bypassing write_submission's own refusals."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "client_ids.npy", ids)
    np.save(folder / "embeddings.npy", vectors)
    return folder


def valid(folder: Path) -> Path:
    return save(folder, RELEVANT[::-1].copy(), np.ones((3, 4), np.float16))


def test_valid_folder_has_no_problems(tmp_path):
    assert folder_problems(valid(tmp_path / "sub"), RELEVANT) == []


def test_folder_written_by_write_submission_is_valid(tmp_path):
    write_submission(tmp_path, RELEVANT, np.ones((3, 4)))
    assert folder_problems(tmp_path, RELEVANT) == []


def test_missing_folder(tmp_path):
    assert folder_problems(tmp_path / "nowhere", RELEVANT) == [
        f"{tmp_path / 'nowhere'}: no such folder, expected a folder holding client_ids.npy "
        "and embeddings.npy"
    ]


def test_a_file_in_place_of_the_folder(tmp_path):
    (tmp_path / "sub").write_text("x")
    [problem] = folder_problems(tmp_path / "sub", RELEVANT)
    assert "not a folder" in problem


@pytest.mark.parametrize("name", ["client_ids.npy", "embeddings.npy"])
def test_missing_file_is_named(tmp_path, name):
    folder = valid(tmp_path)
    (folder / name).unlink()
    assert folder_problems(folder, RELEVANT) == [
        f"{name}: missing, expected a .npy file saved with numpy.save"
    ]


def test_both_files_missing_gives_two_messages(tmp_path):
    found = folder_problems(tmp_path, RELEVANT)
    assert [p.split(":")[0] for p in found] == ["client_ids.npy", "embeddings.npy"]


def test_not_an_npy_file(tmp_path):
    folder = valid(tmp_path)
    (folder / "embeddings.npy").write_text("1,2,3\n")
    assert folder_problems(folder, RELEVANT) == [
        "embeddings.npy: not a .npy file (it does not start with the NumPy format's magic "
        "bytes), expected a file saved with numpy.save"
    ]


def test_npz_archive_under_an_npy_name_is_not_an_npy_file(tmp_path):
    # np.load would hand back an NpzFile, not an array.
    folder = valid(tmp_path)
    with (folder / "client_ids.npy").open("wb") as handle:
        np.savez(handle, ids=RELEVANT)
    [problem] = folder_problems(folder, RELEVANT)
    assert problem.startswith("client_ids.npy: not a .npy file")


def test_plain_pickle_is_not_an_npy_file(tmp_path):
    folder = valid(tmp_path)
    (folder / "client_ids.npy").write_bytes(pickle.dumps([1, 2, 3]))
    [problem] = folder_problems(folder, RELEVANT)
    assert problem.startswith("client_ids.npy: not a .npy file")


def test_object_array_is_refused_not_unpickled(tmp_path):
    folder = valid(tmp_path)
    np.save(folder / "client_ids.npy", np.array([1, 2, 3], dtype=object), allow_pickle=True)
    [problem] = folder_problems(folder, RELEVANT)
    assert problem.startswith("client_ids.npy: cannot be loaded with allow_pickle=False")
    assert "Object arrays" in problem


def test_truncated_npy_file(tmp_path):
    folder = valid(tmp_path)
    path = folder / "embeddings.npy"
    path.write_bytes(path.read_bytes()[:-5])
    [problem] = folder_problems(folder, RELEVANT)
    assert problem.startswith("embeddings.npy: cannot be loaded with allow_pickle=False")


def test_wrong_id_dtype(tmp_path):
    folder = save(tmp_path, RELEVANT.astype(np.int32), np.ones((3, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: must be a 1-D int64 array, got 1-D int32"
    ]


def test_float_ids_are_reported_without_comparing_them(tmp_path):
    folder = save(tmp_path, RELEVANT.astype(np.float64), np.ones((3, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: must be a 1-D int64 array, got 1-D float64"
    ]


def test_scalar_ids_do_not_crash(tmp_path):
    # submission_problems would call len() on the 0-d array and raise TypeError.
    folder = save(tmp_path, np.int64(1), np.ones((3, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: must be a 1-D int64 array, got 0-D int64"
    ]


def test_one_dimensional_embeddings(tmp_path):
    folder = save(tmp_path, RELEVANT, np.ones(3, np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "embeddings.npy: must be 2-D (one row per client), got 1-D"
    ]


def test_float32_embeddings(tmp_path):
    folder = save(tmp_path, RELEVANT, np.ones((3, 4), np.float32))
    assert folder_problems(folder, RELEVANT) == ["embeddings.npy: must be float16, got float32"]


def test_too_many_dimensions(tmp_path):
    folder = save(tmp_path, RELEVANT, np.ones((3, 9), np.float16))
    assert folder_problems(folder, RELEVANT, max_dim=8) == [
        "embeddings.npy: 9 dimensions, at most 8 allowed"
    ]


def test_default_dimension_limit_is_2048(tmp_path):
    folder = save(tmp_path, RELEVANT, np.ones((3, 2049), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "embeddings.npy: 2049 dimensions, at most 2048 allowed"
    ]
    save(tmp_path, RELEVANT, np.ones((3, 2048), np.float16))
    assert folder_problems(folder, RELEVANT) == []


def test_row_count_mismatch(tmp_path):
    folder = save(tmp_path, RELEVANT, np.ones((2, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "embeddings.npy: 2 rows for the 3 ids in client_ids.npy, expected one row per id"
    ]


def test_nan_and_infinity(tmp_path):
    vectors = np.ones((3, 4), np.float16)
    vectors[0, 1], vectors[2, 3] = np.nan, np.inf
    folder = save(tmp_path, RELEVANT, vectors)
    assert folder_problems(folder, RELEVANT) == [
        "embeddings.npy: 2 NaN or infinite values, expected finite values only"
    ]


def test_duplicated_ids(tmp_path):
    ids = np.array([1, 2, 3, 3], dtype=np.int64)
    folder = save(tmp_path, ids, np.ones((4, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: 1 duplicated ids, expected each client once"
    ]


def test_missing_relevant_clients(tmp_path):
    folder = save(tmp_path, np.array([1, 3], dtype=np.int64), np.ones((2, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: 1 relevant clients missing, expected every relevant client (e.g. 2)"
    ]


def test_extra_clients(tmp_path):
    ids = np.array([1, 2, 3, 7, 8], dtype=np.int64)
    folder = save(tmp_path, ids, np.ones((5, 4), np.float16))
    assert folder_problems(folder, RELEVANT) == [
        "client_ids.npy: 2 clients that are not relevant, expected only the relevant clients "
        "(e.g. 7)"
    ]


def test_every_broken_rule_is_reported_at_once(tmp_path):
    ids = np.array([1, 1, 9], dtype=np.int32)
    vectors = np.full((2, 5), np.nan, np.float32)
    found = folder_problems(save(tmp_path, ids, vectors), RELEVANT, max_dim=4)
    assert [p.split(":")[0] for p in found] == ["client_ids.npy"] + ["embeddings.npy"] * 4 + [
        "client_ids.npy"
    ] * 3
    assert len(found) == 8, found


def test_a_submission_written_in_blocks_is_never_mapped_and_replaces_the_old_one(tmp_path):
    """Blocks are appended to the file, not written through a memory map (whose pages would
    count in the resident memory of the step); the old folder stands until the commit."""
    from ubp_assets.evaluation.submission import SubmissionWriter, read_submission

    folder = tmp_path / "m"
    write_submission(folder, RELEVANT, np.zeros((3, 4)))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 4)).astype(np.float32)
    writer = SubmissionWriter(folder, 3, 4)
    writer.write(RELEVANT[:2], vectors[:2])
    writer.write(RELEVANT[2:], vectors[2:])
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(folder) not in maps.read_text()
    assert not read_submission(folder)[1].any()  # the old folder until the commit
    with pytest.raises(ValueError, match="rows of 4"):
        writer.write(RELEVANT[:1], np.ones((1, 5)))
    writer.commit()
    ids, stored = read_submission(folder)
    np.testing.assert_array_equal(ids, RELEVANT)
    np.testing.assert_array_equal(stored, vectors.astype(np.float16))
    assert folder_problems(folder, RELEVANT) == []
