"""Several workers add trials to one Optuna study on the Postgres server `.ci/start-postgres`
starts: two processes, each running the project's own objective (the autoencoder trained for a
few epochs, the fast probe on the halves) on the same stored study at once, find every trial
once, no point drawn twice, and the first (random) trials equal to a one-worker study's. Without
the server the test skips, unless UBP_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ubp_assets.model.training import TrainConfig
from ubp_assets.model.tuning import OWNER_ATTR, STUDY_NAME, open_study, suggest_config

ROOT = Path(__file__).resolve().parents[1]
TRIALS_EACH = 3
# One worker: the project's objective on a small seeded matrix with a churn-like task, adding
# TRIALS_EACH trials to the study at argv[1] as owner argv[2].
WORKER = f"""
import sys
import numpy as np
from ubp_assets.model.training import TrainConfig
from ubp_assets.model.tuning import TuningTask, make_objective, open_study

rng = np.random.default_rng(5)
features = rng.normal(size=(400, 24)).astype(np.float32)
labels = (features[:, :1] + rng.normal(size=(400, 1)) > 0).astype(np.float32)
task = TuningTask("churn", labels, np.arange(400), None)
base = TrainConfig(epochs=3, patience=3, seed=0)
study = open_study(sys.argv[1], seed=0)
objective = make_objective(features, [task], base, log=lambda _: None, owner=sys.argv[2])
study.optimize(objective, n_trials={TRIALS_EACH}, catch=())
"""


def _postgres_url(pg_database: dict[str, str]) -> str:
    return (
        "postgresql+psycopg2://{DAGSTER_PG_USER}:{DAGSTER_PG_PASSWORD}@{DAGSTER_PG_HOST}:"
        "{DAGSTER_PG_PORT}/{DAGSTER_PG_DB}".format(**pg_database)
    )


def _start_worker(url: str, owner: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, owner],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_two_workers_add_every_trial_once_to_one_study_on_postgres(pg_database, tmp_path):
    import optuna

    url = _postgres_url(pg_database)
    logs = {owner: tmp_path / f"{owner}.log" for owner in ("w1", "w2")}
    workers = {owner: _start_worker(url, owner, log) for owner, log in logs.items()}
    for owner, worker in workers.items():
        assert worker.wait(timeout=600) == 0, logs[owner].read_text()[-3000:]

    trials = optuna.load_study(study_name=STUDY_NAME, storage=url).trials
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_EACH))  # each once
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    by_owner = [t.user_attrs[OWNER_ATTR] for t in trials]
    assert sorted(by_owner) == ["w1"] * TRIALS_EACH + ["w2"] * TRIALS_EACH
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(points)) == len(points)  # no point drawn twice
    assert all(t.value is not None for t in trials if t.state.name == "COMPLETE")

    # the random startup trials (k < 4: at most k trials had finished when trial k began) drew
    # what one worker alone draws for the same numbers
    alone = open_study(f"sqlite:///{tmp_path / 'alone.db'}", seed=0)
    for _ in range(4):
        trial = alone.ask()
        suggest_config(trial, TrainConfig())
        alone.tell(trial, 0.0)
    spread = {t.number: t.params for t in trials}
    assert {t.number: t.params for t in alone.trials} == {k: spread[k] for k in range(4)}
