"""Data contracts: reading, validation messages, the cleaning rules and their report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.config import DataConfig
from clv.data import clean_transactions, read_customer_list, read_transactions
from clv.errors import DataValidationError

CFG = DataConfig()


def log(**columns) -> pd.DataFrame:
    base = {
        "customer_id": ["a", "a", "b"],
        "date": ["2020-01-01", "2020-01-05", "2020-01-03"],
        "amount": [10.0, 20.0, 5.0],
    }
    return pd.DataFrame({**base, **columns})


def test_embedded_cdnow_is_the_full_log():
    raw, effective = read_transactions("cdnow", CFG)
    cleaned = clean_transactions(raw, effective)
    assert cleaned.report.customers == 23570
    assert cleaned.report.first_date == "1997-01-01"
    assert cleaned.report.last_date == "1998-06-30"
    assert cleaned.frame["customer_id"].iloc[0] == "00001"  # ids are text, zeros kept


@pytest.mark.parametrize(
    ("frame", "pattern"),
    [
        (log().iloc[:0], "empty"),
        (log().drop(columns="date"), r"Missing column\(s\) 'date' \(date\).*--date-col"),
        (
            log(customer_id=["a", None, "b"]),
            r"'customer_id': 1 row\(s\) have no customer id, e\.g\. row 2",
        ),
        (log(customer_id=["a", " ", "b"]), r"'customer_id': 1 row\(s\) have no customer id"),
        (log(date=["2020-01-01", None, None]), r"'date': 2 row\(s\) have no date, e\.g\. row 2"),
        (
            log(date=["2020-01-01", "yesterday", "2020-01-03"]),
            r"'date': 1 row\(s\) have a date that cannot be parsed, e\.g\. row 2 \('yesterday'\)",
        ),
        (
            log(amount=["10", "$20", "x"]),
            r"'amount': 2 row\(s\) have a non-numeric amount, e\.g\. row 2 \('\$20'\)",
        ),
        (log(amount=[1.0, np.nan, 2.0]), r"'amount': 1 row\(s\) have no amount"),
    ],
)
def test_bad_input_names_column_count_and_example(frame, pattern):
    with pytest.raises(DataValidationError, match=pattern):
        clean_transactions(frame, CFG)


def test_negative_amounts_are_excluded_and_reported():
    frame = log(amount=[10.0, -4.0, 5.0])
    cleaned = clean_transactions(frame, CFG)
    report = cleaned.report
    assert (report.negative_amount_rows, report.negative_amount_total) == (1, -4.0)
    assert report.rows_used == 2 and report.transactions == 2
    with pytest.raises(
        DataValidationError, match=r"1 row\(s\) have a negative amount, e\.g\. row 2"
    ):
        clean_transactions(frame, CFG.model_copy(update={"negative_amounts": "error"}))


def test_zero_amounts_kept_or_excluded_and_counted_either_way():
    frame = log(amount=[10.0, 0.0, 5.0])
    kept = clean_transactions(frame, CFG).report
    dropped = clean_transactions(frame, CFG.model_copy(update={"zero_amounts": "exclude"})).report
    assert (kept.zero_amount_rows, kept.rows_used) == (1, 3)
    assert (dropped.zero_amount_rows, dropped.rows_used) == (1, 2)


def test_same_day_purchases_merge_with_amounts_summed():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "date": ["2020-01-01 09:00", "2020-01-01 18:30", "2020-01-02"],
            "amount": [1.5, 2.5, 3.0],
        }
    )
    cleaned = clean_transactions(frame, CFG)
    assert cleaned.report.same_day_merged == 1
    assert cleaned.frame["amount"].tolist() == [4.0, 3.0]


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 4), st.integers(0, 3), st.sampled_from([0.1, 0.2, 0.7, 5.0, 1e16])
        ),
        min_size=1,
        max_size=60,
    ),
    batch=st.integers(1, 7),
    amounts=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_sorted_rows_sum_into_days_across_any_batches(rows, batch, amounts, seed):
    """A day split over two (or more) Arrow batches is still one row with its whole total, and
    the total is the same to the bit whatever order the day's rows come in and wherever the
    batches end (0.1 + 0.2 + 0.7 and 1e16 + 1 - 1e16 depend on the order)."""
    import pyarrow as pa

    from clv.data.compact import sum_same_days

    columns = ["code", "day", "amount"] if amounts else ["code", "day"]

    def summed_days(frame: pd.DataFrame, rows_per_batch: int):
        table = pa.Table.from_pandas(frame[columns].astype({"code": "int32", "day": "int32"}))
        return sum_same_days(table.to_batches(rows_per_batch), len(frame), amounts)

    frame = pd.DataFrame(rows, columns=["code", "day", "amount"])
    canonical = frame.sort_values(["code", "day", "amount"], ignore_index=True)
    shuffled = frame.sample(frac=1, random_state=np.random.RandomState(seed % 2**32))
    shuffled = shuffled.sort_values(["code", "day"], kind="stable", ignore_index=True)
    codes, days, summed = summed_days(shuffled, batch)
    same_codes, same_days, same_summed = summed_days(canonical, len(frame))
    expected = frame.groupby(["code", "day"], as_index=False)["amount"].agg(math.fsum)
    assert codes.tolist() == same_codes.tolist() == expected["code"].tolist()
    assert days.tolist() == same_days.tolist() == expected["day"].tolist()
    if amounts:
        assert summed.tolist() == same_summed.tolist()
        np.testing.assert_allclose(summed, expected["amount"], rtol=1e-12, atol=4.0)
    else:
        assert summed is None


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30),
    dtype=st.sampled_from(["int64", "Int64", "float64"]),
    start=st.integers(0, 5),
)
def test_integer_ids_become_the_same_text_as_pandas_gives(ids, dtype, start):
    """Integer ids take Arrow's cast to text (the fast path); the text is pandas' own, the
    index kept, and whole-number floats are read as integers."""
    from clv.data.screen import customer_ids

    if dtype == "float64":
        ids = [i % 2**40 for i in ids]  # exact in a double
    index = pd.RangeIndex(start, start + len(ids))
    values = pd.Series(ids, dtype=dtype, index=index)
    expected = pd.Series(ids, dtype="int64", index=index).astype("str")
    pd.testing.assert_series_equal(customer_ids(values, "id"), expected)


@settings(max_examples=40, deadline=None)
@given(
    days=st.lists(st.integers(-106_000, 106_000), min_size=1, max_size=40),
    share=st.sampled_from([0.01, 0.05, 0.25, 0.75, 0.99]),
)
def test_the_bulk_of_the_dates_is_the_same_on_day_numbers(days, share):
    """The whole-log rule takes the dates' quantiles on day numbers (half the memory of
    timestamps): the same days as DuckDB's quantile on the timestamps, before 1970 too."""
    from clv.data.whole_log import BulkSql, _day
    from clv.tables import query

    frame = pd.DataFrame({"date": pd.to_datetime(np.array(days) * 86_400, unit="s")})
    on_days = BulkSql.duckdb(frame).run(
        f"SELECT {BulkSql.date_quantile.format(q=share)} AS q FROM tx"
    )
    on_stamps = query(f"SELECT quantile_disc(date, {share}) AS q FROM tx", tx=frame)
    assert _day(on_days["q"].iloc[0]) == pd.Timestamp(on_stamps["q"].iloc[0])


def test_timezone_aware_timestamps_count_days_in_the_configured_zone():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "amount": [1.0, 1.0],
            "date": ["2020-01-01T23:30:00-05:00", "2020-01-02T08:00:00+01:00"],
        }
    )
    utc = clean_transactions(frame, CFG).frame["date"].dt.strftime("%Y-%m-%d").tolist()
    ny = clean_transactions(frame, CFG.model_copy(update={"timezone": "America/New_York"}))
    assert utc == ["2020-01-02"]  # 04:30 and 07:00 UTC: one day, merged
    assert ny.frame["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-01", "2020-01-02"]


def test_rows_after_as_of_are_ignored_and_counted():
    cleaned = clean_transactions(log(), CFG, as_of=pd.Timestamp("2020-01-03"))
    assert cleaned.report.rows_after_as_of == 1
    assert cleaned.report.last_date == "2020-01-03"


def test_default_amount_column_is_optional_but_a_named_one_is_not(tmp_path):
    path = tmp_path / "log.csv"
    log().drop(columns="amount").to_csv(path, index=False)
    raw, effective = read_transactions(path, CFG)
    assert effective.amount_col is None
    assert not clean_transactions(raw, effective).has_amounts
    with pytest.raises(DataValidationError, match=r"Missing column\(s\) 'revenue' \(amount\)"):
        raw, effective = read_transactions(path, CFG.model_copy(update={"amount_col": "revenue"}))
        clean_transactions(raw, effective)


def test_yyyymmdd_integers_in_parquet_are_dates_not_nanoseconds(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"cust": [7, 7], "day": [20200101, 20200108], "value": [1.0, 2.0]}).to_parquet(
        path
    )
    config = DataConfig(
        customer_col="cust", date_col="day", amount_col="value", date_format="%Y%m%d"
    )
    raw, effective = read_transactions(path, config)
    cleaned = clean_transactions(raw, effective)
    assert cleaned.frame["customer_id"].tolist() == ["7", "7"]
    assert cleaned.report.first_date == "2020-01-01"


def test_customer_list_rejects_duplicates_and_keeps_attributes(tmp_path):
    path = tmp_path / "list.csv"
    pd.DataFrame({"id": ["001", "002"], "channel": [1, 0]}).to_csv(path, index=False)
    listed = read_customer_list(path, "id")
    assert listed.columns.tolist() == ["customer_id", "channel"]
    assert listed["customer_id"].tolist() == ["001", "002"]
    pd.DataFrame({"id": ["1", "2", "1"]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"1 id\(s\) in 'id' are listed more than once"):
        read_customer_list(path, "id")


rows = st.lists(
    st.tuples(
        st.sampled_from("abcde"),
        st.integers(0, 20),
        st.integers(0, 23),
        st.sampled_from([-5.0, 0.0, 1.0, 2.5, 10.0]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(data=rows, zero=st.sampled_from(["keep", "exclude"]), as_of_day=st.integers(0, 25))
def test_cleaning_accounts_for_every_row_and_every_unit_of_spend(data, zero, as_of_day):
    frame = pd.DataFrame(
        {
            "customer_id": [d[0] for d in data],
            "date": [
                pd.Timestamp("2021-03-01") + pd.Timedelta(days=d[1], hours=d[2]) for d in data
            ],
            "amount": [d[3] for d in data],
        }
    )
    as_of = pd.Timestamp("2021-03-01") + pd.Timedelta(days=as_of_day)
    config = CFG.model_copy(update={"zero_amounts": zero})
    try:
        cleaned = clean_transactions(frame, config, as_of=as_of)
    except DataValidationError as exc:
        assert "No purchase is left" in str(exc)
        return
    r = cleaned.report
    zero_dropped = r.zero_amount_rows if zero == "exclude" else 0
    assert r.rows_read == r.rows_used + r.negative_amount_rows + zero_dropped + r.rows_after_as_of
    assert r.transactions == r.rows_used - r.same_day_merged == len(cleaned.frame)
    kept = frame[
        (frame["date"] < as_of + pd.Timedelta(days=1))
        & (frame["amount"] > 0 if zero == "exclude" else frame["amount"] >= 0)
    ]
    assert cleaned.frame["amount"].sum() == pytest.approx(kept["amount"].sum())
    assert not cleaned.frame.duplicated(["customer_id", "date"]).any()


def _parquet_log(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "log.parquet"
    frame.to_parquet(path, index=False, row_group_size=1_000)
    return path


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("1997-06-30")])
def test_chunked_parquet_cleaning_equals_cleaning_in_memory(tmp_path, as_of):
    from clv.data import clean_parquet

    raw, _ = read_transactions("cdnow-sample", CFG)
    raw = raw.assign(date=pd.to_datetime(raw["date"], format="%Y%m%d"))
    raw.loc[raw.index[::97], "amount"] = -1.0  # some returns, spread over the chunks
    path = _parquet_log(tmp_path, raw)
    seen: list[tuple[int, int]] = []
    chunked = clean_parquet(
        path, CFG, as_of, progress=lambda done, total: seen.append((done, total)), chunk_rows=1_500
    )
    whole = clean_transactions(raw, CFG, as_of)
    pd.testing.assert_frame_equal(chunked.frame, whole.frame)
    assert chunked.report == whole.report
    assert chunked.report.negative_amount_rows > 0
    assert len(seen) == -(-len(raw) // 1_500) and seen[-1] == (len(raw), len(raw))


def test_chunked_parquet_errors_name_the_rows_of_the_chunk(tmp_path):
    from clv.data import clean_parquet

    frame = pd.DataFrame(
        {
            "customer_id": [str(i % 50) for i in range(5_000)],
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(5_000) % 300, "D"),
            "amount": 1.0,
        }
    )
    frame.loc[3_210, "customer_id"] = None
    with pytest.raises(
        DataValidationError, match=r"1 row\(s\) have no customer id.*rows 3,001–4,000"
    ):
        clean_parquet(_parquet_log(tmp_path, frame), CFG, chunk_rows=1_000)


def test_parquet_without_the_default_amount_column_reads_without_amounts(tmp_path):
    from clv.data import load_transactions

    frame = pd.DataFrame({"customer_id": ["a", "b"], "date": pd.to_datetime(["2020-01-01"] * 2)})
    cleaned = load_transactions(_parquet_log(tmp_path, frame), CFG)
    assert not cleaned.has_amounts and cleaned.report.transactions == 2


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Files appear with the mode a plain open() gives (mkstemp alone would leave 0600)."""
    import os

    from clv.tables import write_table

    path = write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 2**31 - 2), max_size=50),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["left", "right"]),
    st.sampled_from([np.int32, np.int64]),
)
def test_position_is_numpys_searchsorted_without_a_copy(values, value, side, dtype):
    """``position`` asks in the array's dtype: the same place as numpy.searchsorted, and no
    int64 copy of an int32 array (which numpy makes for a Python int)."""
    import tracemalloc

    from clv.data.compact import position

    ordered = np.sort(np.asarray(values, dtype=dtype))
    assert position(ordered, value, side) == int(np.searchsorted(ordered, value, side))
    big = np.arange(2_000_000, dtype=np.int32)
    tracemalloc.start()
    try:
        assert position(big, value % len(big), side) == value % len(big) + (side == "right")
        assert tracemalloc.get_traced_memory()[1] < 100_000  # the array is 8 MB as int64
    finally:
        tracemalloc.stop()
