"""Table schemas as Dagster metadata (the markdown itself is in `ubp_assets.markdown`)."""

from __future__ import annotations

import dagster as dg
import polars as pl


def column_schema(schema: pl.Schema, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=descriptions.get(name))
            for name, dtype in schema.items()
        ]
    )
