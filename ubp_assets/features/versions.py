"""Each family's code versions kept honest: a digest of the code a partial or fold runs, and the
lock that records which digest each version was given.

Dagster decides staleness by code version, and a fold's stored table stands while its version and
input days are unchanged; a change to the code that forgets to bump the version would leave the
old table standing, silently. `ubp_assets_tests/test_code_versions.py` compares every digest with
the lock and fails on such a change. After bumping a version, record it:

    python -m ubp_assets.features.versions
"""

from __future__ import annotations

import ast
import dis
import hashlib
import inspect
import json
import textwrap
import types
from pathlib import Path

LOCK = Path(__file__).with_name("code_versions.lock.json")
PACKAGE = "ubp_assets"
_LOADS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF"}
_ATTRS = {"LOAD_ATTR", "LOAD_METHOD"}


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _ours(value: object) -> bool:
    module = value.__name__ if isinstance(value, types.ModuleType) else value.__module__
    return (module or "").startswith(PACKAGE)


def _referenced(fn: types.FunctionType):
    """The values fn's code names: globals, closure cells, and attributes of the package's
    modules it names (`session.fold`), as (qualified name, value)."""
    cells = {
        name: cell.cell_contents
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True)
    }
    for code in _codes(fn.__code__):
        previous = None
        for ins in dis.get_instructions(code):
            if ins.opname in _LOADS:
                name = ins.argval
                previous = cells[name] if name in cells else fn.__globals__.get(name)
                if not isinstance(previous, types.ModuleType):
                    yield f"{fn.__module__}.{name}", previous
            elif ins.opname in _ATTRS and isinstance(previous, types.ModuleType):
                if _ours(previous):
                    yield f"{previous.__name__}.{ins.argval}", getattr(previous, ins.argval, None)
                previous = None
            else:
                previous = None


def _code_text(fn: types.FunctionType) -> str:
    """The function's syntax tree: formatting and comments do not count, the code does."""
    source = textwrap.dedent(inspect.getsource(fn))
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:  # a lambda cut out of a larger expression
        return source


def code_digest(function: types.FunctionType) -> str:
    """A digest of the function's source and of what it reaches by name in the package,
    transitively: functions by their source, plain constants by their value."""
    seen: set[str] = set()
    parts: list[str] = []

    def visit(fn: types.FunctionType) -> None:
        parts.append(_code_text(fn))
        for name, value in _referenced(fn):
            if name in seen or value is None:
                continue
            seen.add(name)
            if isinstance(value, types.FunctionType):
                if _ours(value):
                    visit(value)
            elif not callable(value) and " at 0x" not in (text := repr(value)):
                parts.append(f"{name.rsplit('.', 1)[-1]}={text}")

    visit(function)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def current() -> dict[str, dict[str, str]]:
    """Every partial's and fold's version and digest, by asset name."""
    from ubp_assets.features.pipeline import FOLDS, PARTIALS, fold_name

    found = {
        name: {"version": spec.code_version, "digest": code_digest(spec.compute)}
        for name, spec in PARTIALS.items()
    }
    for family, spec in FOLDS.items():
        found[fold_name(family)] = {
            "version": spec.code_version,
            "digest": code_digest(spec.compute),
        }
    return found


def locked() -> dict[str, dict[str, str]]:
    return json.loads(LOCK.read_text()) if LOCK.is_file() else {}


def unrecorded_changes() -> list[str]:
    """What the lock does not account for: code changed under the same version, or a version
    bumped without its digest recorded."""
    problems = []
    lock = locked()
    for name, now in current().items():
        was = lock.get(name)
        if was is None:
            problems.append(f"{name}: not in the lock; run python -m ubp_assets.features.versions")
        elif now["digest"] != was["digest"] and now["version"] == was["version"]:
            problems.append(
                f"{name}: its code changed but its code version is still {now['version']!r}; "
                "bump it in ubp_assets/features/pipeline.py, then run "
                "python -m ubp_assets.features.versions"
            )
        elif now != was:
            problems.append(f"{name}: version bumped; run python -m ubp_assets.features.versions")
    return problems


if __name__ == "__main__":
    LOCK.write_text(json.dumps(current(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {LOCK}")
