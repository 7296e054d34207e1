"""Synthetic RecSys Challenge 2025 data in the release's exact form.

Stands alone: imports nothing else of the package.
"""

from ubp_assets.synthetic.release import ReleaseSummary, write_release
from ubp_assets.synthetic.scales import SCALES, Scale, get_scale

__all__ = ["SCALES", "ReleaseSummary", "Scale", "get_scale", "write_release"]
