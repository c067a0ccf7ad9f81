"""RFM from DuckDB SQL against the definitions of DOMAIN.md §1 and a plain pandas reference."""

from __future__ import annotations

import lifetimes.datasets
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.data.read import embedded_path as _embedded_path
from clv.features import build_calibration_holdout, build_rfm
from clv.units import DAYS_PER_UNIT


def reference_rfm(tx: pd.DataFrame, end: pd.Timestamp, unit: str) -> pd.DataFrame:
    """DOMAIN.md §1 written out with a pandas group-by (tx is already same-day merged)."""
    tx = tx[tx["date"] <= end].sort_values(["customer_id", "date"])
    d = DAYS_PER_UNIT[unit]
    g = tx.groupby("customer_id")
    out = pd.DataFrame(
        {
            "frequency": g.size() - 1,
            "recency": (g["date"].max() - g["date"].min()).dt.days / d,
            "T": (end - g["date"].min()).dt.days / d,
            "monetary_value": (g["amount"].sum() - g["amount"].first())
            / (g.size() - 1).clip(lower=1),
        }
    )
    return out.reset_index()


def test_matches_the_published_cdnow_summary(sample_split):
    """lifetimes ships the papers' calibration summary (x, t_x, T to 2 decimals)."""
    summary = lifetimes.datasets.load_cdnow_summary()  # ID = the sample's customer index
    raw = pd.read_csv(_embedded_path("cdnow-sample"), sep=r"\s+", header=None, dtype=str)
    index = raw.drop_duplicates(0).set_index(0)[1].astype(int)
    ours = sample_split.assign(ID=sample_split["customer_id"].map(index))
    ours = ours.sort_values("ID", ignore_index=True)
    assert ours["ID"].tolist() == summary["ID"].tolist()
    np.testing.assert_array_equal(ours["frequency"], summary["frequency"])
    np.testing.assert_allclose(ours["recency"], summary["recency"], atol=0.006)
    np.testing.assert_allclose(ours["T"], summary["T"], atol=0.006)


@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_matches_the_reference_on_cdnow(sample_log, unit):
    end = pd.Timestamp("1998-06-30")
    ours = build_rfm(sample_log.frame, end, unit)
    ref = reference_rfm(sample_log.frame, end, unit)
    pd.testing.assert_frame_equal(ours, ref, check_dtype=False, rtol=1e-12)


days = st.lists(
    st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(0, 60), st.floats(0.5, 100.0)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=days, cut=st.integers(0, 59), unit=st.sampled_from(["day", "week", "month"]))
def test_calibration_and_holdout_partition_the_log(rows, cut, unit):
    start = pd.Timestamp("2022-01-01")
    tx = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "date": [start + pd.Timedelta(days=r[1]) for r in rows],
            "amount": [r[2] for r in rows],
        }
    )
    tx = tx.groupby(["customer_id", "date"], as_index=False)["amount"].sum()
    cal_end, end = start + pd.Timedelta(days=cut), start + pd.Timedelta(days=60)
    split = build_calibration_holdout(tx, cal_end, end, unit)
    if split.empty:  # nobody bought by the cutoff
        assert (tx["date"] > cal_end).all()
        return
    ref = reference_rfm(tx, cal_end, unit)
    pd.testing.assert_frame_equal(split[ref.columns.tolist()], ref, check_dtype=False, rtol=1e-12)
    seen = tx[tx["customer_id"].isin(split["customer_id"])]
    assert split["frequency_holdout"].sum() == (seen["date"] > cal_end).sum()
    assert split["revenue_holdout"].sum() == pytest.approx(
        seen.loc[seen["date"] > cal_end, "amount"].sum()
    )
    assert (split["recency"] <= split["T"]).all()
    assert split["duration_holdout"].iloc[0] == pytest.approx((60 - cut) / DAYS_PER_UNIT[unit])


def test_log_without_amounts_has_no_monetary_column(sample_log):
    rfm = build_rfm(sample_log.frame.drop(columns="amount"), pd.Timestamp("1998-06-30"), "week")
    assert rfm.columns.tolist() == ["customer_id", "frequency", "recency", "T"]


def test_unsorted_logs_give_the_same_tables(sample_log):
    """Sorted logs take the integer-code path, shuffled ones the text-id SQL: same results."""
    from clv.churn import behaviour_features

    tx = sample_log.frame
    shuffled = tx.sample(frac=1.0, random_state=3).reset_index(drop=True)
    cut, end = pd.Timestamp("1997-09-30"), pd.Timestamp("1998-06-30")
    pairs = [
        (build_rfm(tx, cut, "week"), build_rfm(shuffled, cut, "week")),
        (
            build_calibration_holdout(tx, cut, end, "week"),
            build_calibration_holdout(shuffled, cut, end, "week"),
        ),
        (behaviour_features(tx, cut, "week"), behaviour_features(shuffled, cut, "week")),
    ]
    for ours, theirs in pairs:
        pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)


def test_blocks_of_customers_give_the_same_tables(sample_log, monkeypatch):
    """A long ordered log is queried one block of whole customers at a time
    (``Compact.per_customer``): block edges that fall inside a customer's rows move back to her
    first row, and every per-customer table equals the one-query table."""
    import importlib

    from clv.churn import behaviour_features, churn_labels
    from clv.features import add_log_gaps

    log = sample_log.compact
    assert log.ordered
    cut, end = pd.Timestamp("1997-09-30"), pd.Timestamp("1998-06-30")

    def tables() -> list[pd.DataFrame]:
        rfm = build_rfm(log, cut, "week")
        churned = churn_labels(log, rfm["customer_id"], cut, end)
        return [
            rfm,
            build_calibration_holdout(log, cut, end, "week"),
            behaviour_features(log, cut, "week"),
            add_log_gaps(rfm, log, cut, "week"),
            pd.DataFrame({"churned": churned}),
        ]

    whole = tables()
    block = 97
    codes = log.frame["customer_id"].to_numpy()
    starts = np.arange(block, len(codes), block)
    assert (codes[starts] == codes[starts - 1]).sum() > 20  # edges inside a customer's rows
    # the module (clv.data's ``compact`` attribute is the function of that name)
    monkeypatch.setattr(importlib.import_module("clv.data.compact"), "BLOCK_ROWS", block)
    for ours, theirs in zip(tables(), whole, strict=True):
        assert len(ours) > 2_000
        pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)
