"""The house rules on dependency directions, checked over the package's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ubp_assets"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n for n in names if n.startswith("ubp_assets")}


def test_synthetic_imports_nothing_else_of_the_package():
    for path in (PACKAGE / "synthetic").glob("*.py"):
        outside = {n for n in imports_of(path) if not n.startswith("ubp_assets.synthetic")}
        assert not outside, (path.name, outside)


def test_no_stage_imports_the_definitions():
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("definitions.py", "cli.py", "benchmarks.py"):
            assert "ubp_assets.definitions" not in imports_of(path), path


def test_definitions_live_under_defs_one_folder_per_stage():
    stages = {
        p.name for p in (PACKAGE / "defs").iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    assert stages == {"raw", "events", "features", "evaluation", "model", "automation"}
    for stage in ("evaluation", "features", "model", "events", "raw"):
        assert not (PACKAGE / stage / "assets.py").exists(), stage


def test_no_module_under_defs_imports_another():
    """Assets depend on one another by key; shared helpers live outside defs/."""
    for path in (PACKAGE / "defs").rglob("*.py"):
        inside = {n for n in imports_of(path) if n.startswith("ubp_assets.defs")}
        assert not inside, (path, inside)


def test_asset_modules_stay_small():
    for path in (PACKAGE / "defs").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 200, path


def test_pure_logic_does_not_import_dagster():
    pure = [
        PACKAGE / "storage.py",
        PACKAGE / "methods.py",
        PACKAGE / "markdown.py",
        PACKAGE / "plots.py",
        PACKAGE / "warehouse.py",
        *(PACKAGE / "evaluation").glob("*.py"),
        *(PACKAGE / "model").glob("*.py"),
        *(PACKAGE / "features").glob("*.py"),
        *(PACKAGE / "events").glob("*.py"),
        *(PACKAGE / "synthetic").glob("*.py"),
    ]
    for path in pure:
        tree = ast.parse(path.read_text())
        modules = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not any(m.startswith("dagster") for m in modules if m), path


def test_evaluation_imports_nothing_of_the_model():
    for path in (PACKAGE / "evaluation").glob("*.py"):
        assert not {n for n in imports_of(path) if n.startswith("ubp_assets.model")}, path


def test_data_flows_one_way_from_events_to_features_to_model():
    for path in (PACKAGE / "events").glob("*.py"):
        upstream_only = {
            n for n in imports_of(path) if n.startswith(("ubp_assets.features", "ubp_assets.model"))
        }
        assert not upstream_only, path
    for path in (PACKAGE / "features").glob("*.py"):
        assert not {n for n in imports_of(path) if n.startswith("ubp_assets.model")}, path
