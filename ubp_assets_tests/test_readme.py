"""The README's commands stay the ones CI runs; the guides it links exist and stay complete."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.startswith("python3 -m venv .venv && ")
    assert ci in (ROOT / "README.md").read_text()


def test_readme_main_command_runs_the_main_job():
    readme = (ROOT / "README.md").read_text()
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/ubp run\n"
        in (readme)
    )


def test_the_feature_guide_lists_every_feature():
    import re

    from ubp_assets.features.pipeline import FEATURES

    readme = (ROOT / "docs" / "features.md").read_text()
    for name, feature in FEATURES.items():
        shown = name
        if feature.family == "identity":  # listed by pattern: vectors, price bins, ranked items
            shown = re.sub(r"_\d\d$", "_NN", shown)
            shown = re.sub(r"price\d_", "priceB_", shown)
            shown = re.sub(r"_(cat|sku)\d{3}_(touch|buy|recent)$", r"_\1RRR_touch", shown)
        assert f"`{shown}`" in readme, name


def test_every_guide_the_readme_links_exists():
    import re

    readme = (ROOT / "README.md").read_text()
    linked = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert linked, "the README links no guide in docs/"
    missing = [path for path in linked if not (ROOT / path).is_file()]
    assert missing == []
