"""PostgreSQL in and out against Parquet, same log, same run: a simulated log loaded into a
throwaway server (``scripts/pg_server.py``), read and cleaned by clv from the table and from a
Parquet file (medians of repeats; the cleaned logs are checked equal), and scores written to a
table (staging + swap) and to a Parquet file.

``python benchmarks/postgres.py --customers 1000000``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from simulate import simulate

REPO = Path(__file__).resolve().parents[1]


def _pg_server():
    path = REPO / "scripts" / "pg_server.py"
    spec = importlib.util.spec_from_file_location("pg_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median(fun, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fun()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(customers: int, repeats: int) -> None:
    import adbc_driver_postgresql.dbapi as dbapi
    import pyarrow as pa

    from clv.config import DataConfig
    from clv.data.clean import load_transactions
    from clv.data.postgres import write_scores
    from clv.predict import write_scores as write_file

    log = simulate(customers)
    log["date"] = pd.to_datetime(log["date"]).dt.date
    with tempfile.TemporaryDirectory() as tmp, _pg_server().throwaway_server("bench") as uri:
        os.environ["PGPASSWORD"] = "bench"
        parquet = Path(tmp) / "log.parquet"
        log.to_parquet(parquet, index=False)
        started = time.perf_counter()
        with dbapi.connect(uri) as conn, conn.cursor() as cur:
            cur.adbc_ingest("orders", pa.Table.from_pandas(log, preserve_index=False), "create")
            conn.commit()
        load = time.perf_counter() - started
        config = DataConfig(table="orders")
        from_pg = load_transactions(uri, config)
        from_file = load_transactions(parquet, DataConfig())
        assert from_pg.report == from_file.report
        pd.testing.assert_frame_equal(from_pg.frame, from_file.frame)
        read_pg = _median(lambda: load_transactions(uri, config), repeats)
        read_file = _median(lambda: load_transactions(parquet, DataConfig()), repeats)
        rng = np.random.default_rng(0)
        n = from_pg.report.customers
        scores = pd.DataFrame(
            {"customer_id": [f"c{i}" for i in range(n)]}
            | {c: rng.random(n) for c in ("p_alive", "expected_purchases", "clv", "clv_low")}
        )
        write_pg = _median(
            lambda: write_scores(scores, uri, "scores", "replace", "2021-06-30", "bench"), repeats
        )
        write_pq = _median(lambda: write_file(scores, Path(tmp) / "scores.parquet"), repeats)
    rows = len(log)
    print(
        f"{rows:,} rows, {n:,} customers (loaded into PostgreSQL in {load:.1f} s). "
        f"Read + clean: PostgreSQL {read_pg:.2f} s, Parquet {read_file:.2f} s "
        f"(×{read_pg / read_file:.2f}; equal logs and reports). Write {n:,} score rows: "
        f"PostgreSQL {write_pg:.2f} s (staging + swap), Parquet {write_pq:.2f} s "
        f"(×{write_pg / write_pq:.2f}). Medians of {repeats}."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.customers, args.repeats)
