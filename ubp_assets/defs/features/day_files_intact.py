"""A check over every stored day file of events and the partials: a damaged one is named, with
the command that rewrites its day."""

import datetime as dt

import dagster as dg

from ubp_assets.features.pipeline import PARTIALS
from ubp_assets.resources import UbpStorage
from ubp_assets.storage import DATA_FILE, damaged_days, partition_dir

DAY_FILE_ASSETS = ["events", *PARTIALS]


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "day_files_intact",
            asset=name,
            description="Every stored day file is whole parquet (not truncated or cut); a "
            "damaged one is named with the command that rewrites its day.",
        )
        for name in DAY_FILE_ASSETS
    ],
    can_subset=True,
)
def day_files_intact(context: dg.AssetCheckExecutionContext, storage: UbpStorage):
    roots = {"events": storage.events_dir, **{n: storage.partials_dir / n for n in PARTIALS}}
    for key in context.selected_asset_check_keys:
        name = key.asset_key.to_user_string()
        damaged = damaged_days(roots[name])
        listing = "\n".join(
            f"- `{partition_dir(roots[name], day) / DATA_FILE}` (day {day}): {why}"
            for day, why in sorted(damaged.items())
        )
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name="day_files_intact",
            passed=not damaged,
            metadata={
                "damaged_days": len(damaged),
                "damaged_files": dg.MetadataValue.md(listing or "none"),
                **(
                    {"repair": repair_command(storage, context.instance, sorted(damaged))}
                    if damaged
                    else {}
                ),
            },
        )


def repair_command(storage: UbpStorage, instance: dg.DagsterInstance, days: list[dt.date]) -> str:
    """The command that rewrites the given days (first to last) of events and every partial."""
    env = f"DAGSTER_HOME={instance.root_directory} UBP_DATA_DIR={storage.root}"
    if storage.raw_dir:
        env += f" UBP_RAW_DIR={storage.raw_path}"
    which = f"--partition {days[0]}"
    if len(days) > 1:
        which = f"--partition-range {days[0]}...{days[-1]}"
    assets = ",".join(DAY_FILE_ASSETS)
    return f"{env} dg launch -m ubp_assets.definitions --assets {assets} {which}"
