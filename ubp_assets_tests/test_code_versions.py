"""Each family's code versions: a change to what a partial or fold runs must bump its version,
or Dagster and the folds' "stands" decision would keep the table the old code built."""

from __future__ import annotations

import importlib
import sys
import textwrap

import dagster as dg

from ubp_assets.definitions import load_stage_definitions
from ubp_assets.features import versions
from ubp_assets.features.pipeline import FOLDS, PARTIALS


def test_every_partial_and_fold_matches_the_digest_its_version_was_given():
    assert versions.unrecorded_changes() == []


def test_each_family_has_its_own_version_on_its_asset():
    graph = load_stage_definitions().resolve_asset_graph()
    for name, spec in PARTIALS.items():
        assert graph.get(dg.AssetKey(name)).code_version == spec.code_version
    for family, spec in FOLDS.items():
        assert graph.get(dg.AssetKey(f"{family}_features")).code_version == spec.code_version


def _module(tmp_path, monkeypatch, name: str, body: str):
    package = tmp_path / "ubp_assets_probe_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(versions, "PACKAGE", "ubp_assets_probe_pkg")
    sys.modules.pop(f"ubp_assets_probe_pkg.{name}", None)
    return importlib.import_module(f"ubp_assets_probe_pkg.{name}")


FAMILY = """
    GAP = {gap}

    def helper(x):
        return x * GAP + {offset}

    def other(x):
        return x - {other}

    def fold(x):
        return helper(x)
"""


def test_the_digest_follows_helpers_and_constants_and_nothing_else(tmp_path, monkeypatch):
    """The guard can fail: a changed helper or constant the fold reaches changes its digest; a
    function it never calls does not."""

    def digest(gap=30, offset=1, other=2, name="f0"):
        module = _module(
            tmp_path, monkeypatch, name, FAMILY.format(gap=gap, offset=offset, other=other)
        )
        return versions.code_digest(module.fold)

    base = digest(name="f1")
    assert digest(name="f2") == base  # the same code, another module: the same digest
    assert digest(gap=31, name="f3") != base  # a constant the helper reads
    assert digest(offset=2, name="f4") != base  # the helper's own code
    assert digest(other=5, name="f5") == base  # code the fold never reaches


def test_a_change_without_a_version_bump_is_named(monkeypatch):
    lock = versions.locked()
    name = "session_features"
    monkeypatch.setattr(
        versions, "locked", lambda: {**lock, name: {**lock[name], "digest": "0" * 16}}
    )
    problems = versions.unrecorded_changes()
    assert len(problems) == 1 and problems[0].startswith(f"{name}: its code changed")
    assert "bump it" in problems[0]
