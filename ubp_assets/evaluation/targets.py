"""The six tasks' targets and labels (PROTOCOL.md), vectorised with polars joins.

The organisers filter a data frame per client for every label; here one join per window gives
every client's labels at once, in the order of the embedding rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp_assets.evaluation.split import ChallengeSplit
from ubp_assets.location import AnyPath, load_npy, read_parquet, save_npy, write_parquet

TOP_N = 100
PRICE_BUCKETS = 100


@dataclass(frozen=True)
class Task:
    name: str
    column: str | None  # None: a churn-type task (one binary label); else the multi-hot column
    active_only: bool = False  # churn scores only clients who bought in the input

    @property
    def is_binary(self) -> bool:
        return self.column is None


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("churn", None, active_only=True),
        Task("propensity_category", "category"),
        Task("propensity_sku", "sku"),
        Task("conversion", None),
        Task("propensity_new_sku", "sku"),
        Task("propensity_price", "price"),
    )
}
PROPENSITY_TASKS = [name for name, task in TASKS.items() if not task.is_binary]


@dataclass(frozen=True)
class Targets:
    """What the organisers ship as `target/`: the labelled values of each propensity task with
    their popularity (for novelty), the active clients, and the buys of the two target windows."""

    values: dict[str, np.ndarray]  # task -> int64 ids (categories, SKUs or price buckets)
    popularity: dict[str, np.ndarray]  # task -> float64 buy counts aligned with values
    active_clients: np.ndarray  # int64, relevant clients with a product_buy in the input
    train_target: pl.DataFrame  # product_buy in [train_target_start, validation_target_start)
    validation_target: pl.DataFrame  # product_buy in [validation_target_start, end_date]

    def write(self, target_dir: AnyPath) -> None:
        """The organisers' file layout, so their own evaluator could read it."""
        for task, values in self.values.items():
            save_npy(target_dir / f"{task}.npy", values)
            save_npy(target_dir / f"popularity_{task}.npy", self.popularity[task])
        save_npy(target_dir / "active_clients.npy", self.active_clients)
        write_parquet(self.train_target, target_dir / "train_target.parquet")
        write_parquet(self.validation_target, target_dir / "validation_target.parquet")

    @classmethod
    def read(cls, target_dir: AnyPath) -> Targets:
        return cls(
            values={t: load_npy(target_dir / f"{t}.npy") for t in PROPENSITY_TASKS},
            popularity={t: load_npy(target_dir / f"popularity_{t}.npy") for t in PROPENSITY_TASKS},
            active_clients=load_npy(target_dir / "active_clients.npy"),
            train_target=read_parquet(target_dir / "train_target.parquet"),
            validation_target=read_parquet(target_dir / "validation_target.parquet"),
        )


BUY_COLUMNS = ["client_id", "timestamp", "sku", "category", "price"]


def _buys(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.filter(pl.col("event_type") == "product_buy").select(
        "client_id", "timestamp", "sku", "category", pl.col("price").cast(pl.Int64)
    )


def most_frequent(frame: pl.LazyFrame, column: str, n: int) -> pl.DataFrame:
    """The n most bought values, most bought first; ties broken by the smaller id."""
    return (
        frame.filter(pl.col(column).is_not_null())
        .group_by(column)
        .agg(pl.len().alias("buys"))
        .sort(["buys", column], descending=[True, False])
        .head(n)
        .collect()
    )


def _counts_of(frame: pl.LazyFrame, column: str, values: np.ndarray) -> np.ndarray:
    """How often each value was bought in `frame`, aligned with `values` (0 where never)."""
    counts = (
        frame.group_by(column)
        .agg(pl.len().alias("n"))
        .collect()
        .join(pl.DataFrame({column: values}), on=column, how="right")
    )
    return counts["n"].fill_null(0).to_numpy().astype(np.float64)


def build_targets(
    events: pl.LazyFrame, split: ChallengeSplit, relevant: np.ndarray, top_n: int = TOP_N
) -> Targets:
    buys = _buys(events)
    before = pl.col("timestamp") < split.train_target_start
    input_buys = buys.filter(before)
    train_window = buys.filter(
        pl.col("timestamp").is_between(
            split.train_target_start, split.validation_target_start, closed="left"
        )
    )
    validation_window = buys.filter(
        pl.col("timestamp").is_between(split.validation_target_start, split.end_date, closed="both")
    )

    values: dict[str, np.ndarray] = {}
    popularity: dict[str, np.ndarray] = {}
    for task, column in (("propensity_category", "category"), ("propensity_sku", "sku")):
        values[task] = (
            most_frequent(train_window, column, top_n)[column].to_numpy().astype(np.int64)
        )
        popularity[task] = _counts_of(input_buys, column, values[task])

    # New SKUs: bought in the train window, seen in no input event of any type. Their history
    # popularity is zero by definition, so (as PROTOCOL.md advises) it comes from the window.
    seen = events.filter(before & pl.col("sku").is_not_null()).select("sku").unique()
    new_buys = train_window.join(seen, on="sku", how="anti")
    values["propensity_new_sku"] = (
        most_frequent(new_buys, "sku", top_n)["sku"].to_numpy().astype(np.int64)
    )
    popularity["propensity_new_sku"] = _counts_of(train_window, "sku", values["propensity_new_sku"])

    values["propensity_price"] = np.arange(PRICE_BUCKETS, dtype=np.int64)
    popularity["propensity_price"] = _counts_of(input_buys, "price", values["propensity_price"])

    relevant_frame = pl.LazyFrame({"client_id": relevant})
    active = (
        input_buys.select("client_id")
        .unique()
        .join(relevant_frame, on="client_id", how="semi")
        .sort("client_id")
        .collect()["client_id"]
        .to_numpy()
        .astype(np.int64)
    )

    def window(frame: pl.LazyFrame) -> pl.DataFrame:
        return frame.join(relevant_frame, on="client_id", how="semi").sort(BUY_COLUMNS).collect()

    return Targets(
        values=values,
        popularity=popularity,
        active_clients=active,
        train_target=window(train_window),
        validation_target=window(validation_window),
    )


def task_clients(task: Task, client_ids: np.ndarray, targets: Targets) -> np.ndarray:
    """The rows (indices into `client_ids`) a task trains and scores on, in embedding order."""
    if not task.active_only:
        return np.arange(len(client_ids))
    return np.flatnonzero(np.isin(client_ids, targets.active_clients))


def labels(
    task: Task, client_ids: np.ndarray, window: pl.DataFrame, targets: Targets
) -> np.ndarray:
    """float32 labels (len(client_ids), k) from one target window's buys.

    Churn-type: 1 when the client bought nothing in the window. Propensity: multi-hot over the
    task's values, 1 where the client bought that value in the window.
    """
    index = pl.DataFrame({"client_id": client_ids, "row": np.arange(len(client_ids))})
    if task.is_binary:
        out = np.ones((len(client_ids), 1), dtype=np.float32)
        bought = index.join(window.select("client_id").unique(), on="client_id", how="semi")
        out[bought["row"].to_numpy(), 0] = 0.0
        return out
    column = task.column
    assert column is not None
    values = targets.values[task.name]
    value_index = pl.DataFrame({column: values, "col": np.arange(len(values))})
    pairs = (
        window.select("client_id", column)
        .unique()
        .join(index, on="client_id")
        .join(value_index, on=column)
    )
    out = np.zeros((len(client_ids), len(values)), dtype=np.float32)
    out[pairs["row"].to_numpy(), pairs["col"].to_numpy()] = 1.0
    return out


def target_summary(targets: Targets) -> pl.DataFrame:
    """Per task: how many values, and how many buys each window holds of them."""
    rows = []
    for task, values in targets.values.items():
        column = TASKS[task].column
        assert column is not None
        counts = {
            name: frame.filter(pl.col(column).is_in(pl.Series(values).implode())).height
            for name, frame in (
                ("train_buys", targets.train_target),
                ("validation_buys", targets.validation_target),
            )
        }
        rows.append({"task": task, "values": len(values), **counts})
    return pl.DataFrame(rows)
