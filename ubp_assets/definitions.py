"""The code location: every definition under defs/, loaded by `dg` (pyproject's [tool.dg]),
`dagster dev -m ubp_assets.definitions` and workspace.yaml alike."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

PROJECT = Path(__file__).parent


def load_stage_definitions() -> dg.Definitions:
    """Everything under defs/: assets, checks, jobs, schedules, sensors and the resources."""
    return dg.load_from_defs_folder(path_within_project=PROJECT)


def make_definitions(resources: dict[str, object]) -> dg.Definitions:
    """The same definitions over the given resources (tests and `ubp run` point them at their
    own data directory and settings)."""
    loaded = load_stage_definitions()
    return dg.Definitions(
        assets=loaded.assets,
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        schedules=loaded.schedules,
        sensors=loaded.sensors,
        resources=resources,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return load_stage_definitions()
