"""The resources every asset uses, built when the definitions load (not at import) from the
environment's settings: UBP_DATA_DIR, UBP_RAW_DIR and the rest (ubp_assets/resources.py)."""

import dagster as dg

from ubp_assets.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
