"""Markdown a person reads in the Dagster UI and in the reports: small tables, inline charts.

Plain Python (no Dagster), so that the pure report code can use it too.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import polars as pl


def markdown_table(frame: pl.DataFrame, max_rows: int = 10, float_digits: int = 4) -> str:
    """A small frame as a markdown table (lists and arrays shortened)."""
    head = frame.head(max_rows)

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.{float_digits}g}"
        if isinstance(value, list | tuple) or hasattr(value, "tolist"):
            items = list(value)
            text = " ".join(str(v) for v in items[:6])
            return f"[{text}{' …' if len(items) > 6 else ''}]"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(head.columns) + " |",
        "|" + "---|" * len(head.columns),
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > max_rows:
        lines.append(f"\n_{max_rows} of {frame.height:,} rows_")
    return "\n".join(lines)


def png_markdown(figure, path: Path) -> str:
    """Save a matplotlib figure as a PNG report and return markdown that shows it inline."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    path.write_bytes(buffer.getvalue())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{path.stem}](data:image/png;base64,{encoded})\n\nSaved to `{path}`."
