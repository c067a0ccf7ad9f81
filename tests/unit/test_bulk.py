"""The whole-log rule's statistics from counts (clv.data.bulk) against DuckDB's SQL.

Invariants: the counted quantiles and median equal DuckDB's ``quantile_disc`` and ``median``
over the same rows, however the rows are split into chunks and however few amounts the radix
selection may collect (which forces its passes over further digits); and the rule's outcome
with the counts equals its outcome with the SQL, on logs with and without implausible rows.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.config import DataConfig
from clv.data.bulk import BulkSummary
from clv.data.screen import screen_rows
from clv.data.whole_log import screen_bulk
from clv.tables import query

AMOUNTS = st.one_of(
    st.sampled_from([0.0, 0.01, 1.0, 2.5, 9.99, 10.0, 5e-324, 1e15]),
    st.floats(min_value=0.0, max_value=1e15, allow_nan=False, allow_subnormal=True),
)


def _midnights(days: list[int]) -> np.ndarray:
    return (np.array(days, dtype=np.int64) * 86_400_000_000_000).astype("datetime64[ns]")


@settings(max_examples=120, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(-106_000, 106_000), AMOUNTS), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    share=st.integers(1, 999_999),
    collect=st.integers(0, 6),
)
def test_counted_quantiles_and_median_equal_duckdb(rows, cuts, share, collect):
    days = [d for d, _ in rows]
    amounts = np.array([a for _, a in rows], dtype=np.float64)
    dates = _midnights(days)
    summary = BulkSummary()
    edges = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    for start, stop in pairwise(edges):
        summary.add(dates[start:stop], amounts[start:stop])
    pieces = np.array_split(amounts[::-1], 3)  # the passes may see the amounts in any order
    median = summary.median(lambda: pieces, collect_rows=collect)
    frame = pd.DataFrame({"day": np.array(days, dtype=np.int32), "amount": amounts})
    q = f"0.{share:06d}"
    expected = query(
        f"SELECT quantile_disc(day, {q}) AS lo, median(amount) FILTER (WHERE amount > 0) AS m "
        "FROM tx",
        tx=frame,
    ).iloc[0]
    assert summary.day_quantile(Fraction(share, 1_000_000)) == expected["lo"]
    if pd.isna(expected["m"]):
        assert median is None
    else:
        assert median == expected["m"]  # to the bit
    assert summary.rows == len(rows)
    assert summary.max_amount == amounts.max()


def test_many_equal_amounts_are_resolved_to_the_last_digit():
    """Every amount the same: the selection runs out of digits and names the value."""
    amounts = np.full(1_000, 9.99)
    summary = BulkSummary()
    summary.add(_midnights([0] * 1_000), amounts)
    calls = []

    def passes():
        calls.append(1)
        return [amounts]

    assert summary.median(passes, collect_rows=10) == 9.99
    assert len(calls) == 3  # a pass per further digit; the last digit needs none


@pytest.mark.parametrize(
    ("extra_days", "extra_amounts", "policy"),
    [
        ([], [], "exclude"),  # nothing implausible: the counts answer without reading again
        (["2095-06-01", "1890-01-01"], [10.0, 12.0], "exclude"),  # dates far from the bulk
        (["2020-03-01"], [5e9], "exclude"),  # an amount far above the median
        (["2095-06-01"], [9e9], "exclude"),  # both, on one row: counted as a date
        (["2020-03-01"], [5e9], "error"),
    ],
)
def test_the_rule_with_counts_equals_the_rule_in_sql(extra_days, extra_amounts, policy):
    rng = np.random.default_rng(5)
    n = 2_000
    frame = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 300, n).astype(str).tolist() + ["x"] * len(extra_days),
            "date": [
                *pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D"),
                *pd.to_datetime(extra_days),
            ],
            "amount": [*np.round(rng.lognormal(3, 1, n), 2), *extra_amounts],
        }
    )
    config = DataConfig(implausible=policy)
    used, counts = screen_rows(frame, config, None)
    summary = BulkSummary()
    summary.add(used["date"].to_numpy(), used["amount"].to_numpy())
    if policy == "error":
        with pytest.raises(Exception, match="implausible amount") as with_counts:
            screen_bulk(used, counts, config, summary)
        with pytest.raises(Exception, match="implausible amount") as in_sql:
            screen_bulk(used, counts, config)
        assert str(with_counts.value) == str(in_sql.value)
        return
    assert screen_bulk(used, counts, config, summary) == screen_bulk(used, counts, config)
    keep, _, moved = screen_bulk(used, counts, config, summary)
    assert (keep == "TRUE") == (not extra_days)
    assert moved.used == counts.used - len(extra_days)
