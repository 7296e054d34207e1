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


def test_pure_logic_does_not_import_dagster():
    pure = [
        PACKAGE / "storage.py",
        *[p for p in (PACKAGE / "evaluation").glob("*.py") if p.name != "assets.py"],
        *[p for p in (PACKAGE / "model").glob("*.py") if p.name != "assets.py"],
        *[p for p in (PACKAGE / "features").glob("*.py") if p.name != "assets.py"],
        *[p for p in (PACKAGE / "events").glob("*.py") if p.name != "assets.py"],
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
