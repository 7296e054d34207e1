"""The code location's definitions, one folder per stage, loaded by `dg.load_from_defs_folder`.

Modules here hold Dagster definitions only; the logic they call lives in the plain modules
outside (ubp_assets/events, features, evaluation, model), and no module here imports another.
"""
