"""Universal Behavioral Profiles: RecSys Challenge 2025 event logs to one embedding per user."""

import warnings

import dagster as dg

# The project relies on Dagster's beta single-run backfill policy and observable multi-assets on
# purpose; their notices would otherwise greet every `dagster dev` and CLI start.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
