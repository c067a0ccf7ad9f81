"""PostgreSQL in and out, against a real server: a throwaway cluster under a temp dir, bound to
127.0.0.1 on a free port, with a password login (scram) given through $PGPASSWORD.

CDNOW is loaded into it; training and scoring from the table give what the same log gives from
a CSV file; scores go back into a table atomically (replace / append / fail), readers see the
old table or the new one, a killed writer leaves the old one, and the password appears nowhere
clv writes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.config import DataConfig
from clv.data.read import read_embedded
from clv.errors import DatabaseError, DataValidationError

pytest.importorskip("adbc_driver_postgresql", reason="needs clv[postgres] (adbc-driver-postgresql)")

runner = CliRunner()
PASSWORD = "Kx7-not-in-any-file"


@pytest.fixture(scope="module")
def server():
    """A running throwaway cluster (``scripts/pg_server.py``); its URI, PGPASSWORD set."""
    from conftest import load_script

    pg_server = load_script("scripts/pg_server.py")
    try:
        with pg_server.throwaway_server(PASSWORD) as uri:
            os.environ["PGPASSWORD"] = PASSWORD
            yield uri
    except pg_server.ServerUnavailableError as exc:
        pytest.skip(str(exc))
    finally:
        os.environ.pop("PGPASSWORD", None)


def sql(uri: str, statement: str) -> list[tuple]:
    import adbc_driver_postgresql.dbapi as dbapi

    with dbapi.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(statement)
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows


def table(uri: str, name: str) -> pd.DataFrame:
    import adbc_driver_postgresql.dbapi as dbapi

    with dbapi.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {name}")
        return cur.fetch_df()


@pytest.fixture(scope="module")
def cdnow(server, tmp_path_factory):
    """The CDNOW sample as a CSV file and as table ``orders`` (text ids, ``date`` dates,
    ``numeric(10,2)`` amounts: the types a shop's database would use)."""
    tmp = tmp_path_factory.mktemp("pg")
    raw = read_embedded("cdnow-sample")
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "date": pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "amount": raw["amount"].round(2),
        }
    )
    csv = tmp / "cdnow.csv"
    frame.to_csv(csv, index=False)
    import adbc_driver_postgresql.dbapi as dbapi
    import pyarrow as pa

    with dbapi.connect(server) as conn, conn.cursor() as cur:
        cur.adbc_ingest("loaded", pa.Table.from_pandas(frame, preserve_index=False), "create")
        conn.commit()
    sql(
        server,
        "CREATE TABLE orders AS SELECT customer_id::text, date::date, "
        "amount::numeric(10,2) FROM loaded",
    )
    # the same log under other names, for the column options and --query
    sql(server, "CREATE SCHEMA shop")
    sql(
        server,
        "CREATE TABLE shop.sales AS SELECT customer_id AS buyer, date::timestamp AS sold_at, "
        "amount AS total FROM orders",
    )
    return tmp, csv, len(frame)


def test_cdnow_trains_and_scores_from_postgres_as_from_csv(server, cdnow):
    tmp, csv, rows = cdnow
    assert sql(server, "SELECT count(*) FROM orders") == [(rows,)]
    models = {}
    for source, args in {
        "csv": ["-t", str(csv)],
        "pg": ["-t", server, "--table", "orders"],
    }.items():
        models[source] = tmp / f"model-{source}"
        done = runner.invoke(
            app, ["train", *args, "--model-dir", str(models[source]), "--holdout", "39"]
        )
        assert done.exit_code == 0, done.output
        assert PASSWORD not in done.output
    # the MLflow run names its data by the database and table, with the URI as given
    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    run = client.search_runs(experiments, "params.`data.table` = 'orders'")[0]
    dataset = next(
        d.dataset for d in run.inputs.dataset_inputs if d.dataset.name == "postgres-orders"
    )
    assert dataset.source_type == "postgresql"
    assert json.loads(dataset.source) == {"uri": server, "table": "orders"}

    out = tmp / "scores.csv"
    done = runner.invoke(app, ["score", "-m", str(models["csv"]), "-t", str(csv), "-o", str(out)])
    assert done.exit_code == 0, done.output
    common = ["score", "-m", str(models["pg"]), "-t", server, "--table", "orders"]
    done = runner.invoke(app, [*common, "-o", server, "--out-table", "clv_scores"])
    assert done.exit_code == 0, done.output
    assert "clv_scores" in done.output and PASSWORD not in done.output
    local = pd.read_csv(out, dtype={"customer_id": str}).sort_values("customer_id")
    stored = table(server, "clv_scores").sort_values("customer_id")
    assert len(stored) == len(local) == 2357
    assert (stored["as_of"] == "1998-06-30").all()
    assert (stored["model_version"] == "clv-postgres-orders v1").all()  # the registered model
    for column in local.columns:
        if local[column].dtype.kind == "f":
            np.testing.assert_allclose(
                stored[column].to_numpy(float), local[column], rtol=1e-9, err_msg=column
            )
        else:
            assert (stored[column].astype(str).to_numpy() == local[column].astype(str)).all()

    # nothing clv wrote holds the password: MLflow's store, the bundles, the scores
    store = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    written = [Path(store), *models["pg"].rglob("*"), out]
    for path in written:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_chunked_read_equals_a_whole_read(server, cdnow):
    """The chunked path (several chunks, screened apart, merged in DuckDB) gives the log the
    CSV gives, with the same cleaning report."""
    from clv.data.clean import clean_postgres, load_transactions

    _, csv, rows = cdnow
    config = DataConfig(table="orders")
    chunked = clean_postgres(server, config, chunk_rows=1000)
    whole = load_transactions(str(csv), DataConfig())
    assert chunked.report.rows_read == whole.report.rows_read == rows
    assert chunked.report == whole.report
    pd.testing.assert_frame_equal(chunked.frame, whole.frame)


def test_query_and_column_options_map_another_schema(server, cdnow):
    """``--query`` with the column options reads a table whose names and types differ."""
    from clv.data.clean import load_transactions

    csv = cdnow[1]
    mapped = DataConfig(
        query="SELECT buyer, sold_at, total FROM shop.sales WHERE total >= 0",
        customer_col="buyer",
        date_col="sold_at",
        amount_col="total",
    )
    log = load_transactions(server, mapped)
    reference = load_transactions(str(csv), DataConfig())
    pd.testing.assert_frame_equal(log.frame, reference.frame)
    by_table = load_transactions(
        server,
        DataConfig(
            table="shop.sales", customer_col="buyer", date_col="sold_at", amount_col="total"
        ),
    )
    pd.testing.assert_frame_equal(by_table.frame, reference.frame)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DataConfig(), "exactly one of --table"),
        (DataConfig(table="orders", query="SELECT 1"), "exactly one of --table"),
        (DataConfig(table="no_such_table"), "no_such_table"),
        (DataConfig(table="orders", amount_col="price"), "price"),
    ],
)
def test_a_bad_source_is_named(server, cdnow, config, message):
    from clv.data.clean import load_transactions

    with pytest.raises((DataValidationError, DatabaseError), match=message):
        load_transactions(server, config)


def test_a_password_in_the_uri_is_refused_and_not_echoed(server, cdnow):
    with_password = server.replace("clv@", f"clv:{PASSWORD}@")
    done = runner.invoke(app, ["train", "-t", with_password, "--table", "orders", "--no-mlflow"])
    assert done.exit_code != 0
    assert "PGPASSWORD" in done.output and PASSWORD not in done.output


def test_an_unreachable_server_is_a_clear_error(cdnow):
    done = runner.invoke(
        app,
        ["train", "-t", f"postgresql://clv@127.0.0.1:{closed_port()}/postgres", "--table", "x"],
    )
    assert done.exit_code != 0
    assert "Could not connect to postgresql://clv@127.0.0.1" in done.output
    assert "Traceback" not in done.output


def closed_port() -> int:
    """A loopback port nobody listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scores(n: int) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "clv": np.arange(n) * 1.5})


def test_replace_append_and_fail(server):
    from clv.data.postgres import write_scores

    assert write_scores(_scores(5), server, "modes", "fail", "2020-01-01", "m1") == 5
    with pytest.raises(DatabaseError, match="exists"):
        write_scores(_scores(3), server, "modes", "fail", "2020-02-01", "m1")
    write_scores(_scores(3), server, "modes", "append", "2020-02-01", "m2")
    stored = table(server, "modes")
    assert len(stored) == 8
    assert stored.groupby("as_of").size().to_dict() == {"2020-01-01": 5, "2020-02-01": 3}
    assert set(stored["model_version"]) == {"m1", "m2"}
    write_scores(_scores(2), server, "modes", "replace", "2020-03-01", "m3")
    assert table(server, "modes")["as_of"].tolist() == ["2020-03-01"] * 2
    with pytest.raises(DatabaseError, match="no column"):
        other = _scores(2).rename(columns={"clv": "value"})
        write_scores(other, server, "modes", "append", "2020-04-01", "m4")
    assert len(table(server, "modes")) == 2  # a failed append changed nothing
    assert sql(server, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'clv_staging%'") == [
        (0,)
    ]


def test_readers_see_the_old_table_or_the_new_one(server):
    """While scores are swapped in again and again, a reader counting the table's rows by
    as_of never sees a mix, a missing table or a partial one."""
    from clv.data.postgres import write_scores

    sizes = {"old": 40_000, "new": 60_000}
    write_scores(_scores(sizes["old"]), server, "swapped", "replace", "old", "m")
    seen, stop, errors = [], threading.Event(), []

    def read() -> None:
        import adbc_driver_postgresql.dbapi as dbapi

        with dbapi.connect(server) as conn, conn.cursor() as cur:
            while not stop.is_set():
                try:
                    cur.execute("SELECT as_of, count(*) FROM swapped GROUP BY as_of")
                    seen.append(tuple(sorted(cur.fetchall())))
                    conn.commit()
                except Exception as exc:
                    errors.append(exc)
                    conn.rollback()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(6):
            which = "new" if i % 2 == 0 else "old"
            write_scores(_scores(sizes[which]), server, "swapped", "replace", which, "m")
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[:3]
    assert set(seen) <= {(("old", sizes["old"]),), (("new", sizes["new"]),)}
    assert len(set(seen)) == 2, "the reader should have seen both tables"


KILLED_WRITER = """
import sys
import numpy as np
import pandas as pd
from clv.data.postgres import write_scores
n = 400_000
scores = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "clv": np.arange(n) * 1.0})
print("writing", flush=True)
write_scores(scores, sys.argv[1], "killed", "replace", "new", "m")
print("done", flush=True)
"""


def _kill_writer(server: str, script: Path, delay: float) -> None:
    child = subprocess.Popen(
        [sys.executable, str(script), server], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "writing"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()


def _wait_for_blocked_drop(server: str, timeout: float = 60.0) -> None:
    """Wait until a backend is waiting for a lock in ``DROP TABLE "killed"``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = sql(
            server,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE 'DROP TABLE%killed%'",
        )
        if waiting[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("the writer never reached its DROP TABLE")


def test_a_writer_killed_at_any_moment_leaves_the_old_table(server, tmp_path):
    import adbc_driver_postgresql.dbapi as dbapi

    from clv.data.postgres import write_scores

    def state() -> list[tuple]:
        return sql(server, "SELECT as_of, count(*) FROM killed GROUP BY as_of")

    write_scores(_scores(1000), server, "killed", "replace", "old", "m")
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)

    # Killed inside its transaction, for certain: a reader holds a lock on the target, so the
    # writer has loaded all its rows into the staging table and waits at DROP TABLE when it
    # dies. Its backend then runs the DROP and the RENAME once the lock is freed, finds the
    # client gone before any COMMIT, and rolls back.
    reader = dbapi.connect(server)
    cur = reader.cursor()
    cur.execute("LOCK TABLE killed IN ACCESS SHARE MODE")
    child = subprocess.Popen(
        [sys.executable, str(script), server], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "writing"
        _wait_for_blocked_drop(server)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        reader.rollback()
        cur.close()
        reader.close()
    assert state() == [("old", 1000)]

    # Killed at random moments: before, during or after the commit, never a mix.
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.0, 1.5, 4):
        _kill_writer(server, script, delay)
        assert state() in ([("old", 1000)], [("new", 400_000)])
        write_scores(_scores(1000), server, "killed", "replace", "old", "m")
    # the server has rolled the dead writers' transactions back: no staging tables remain
    deadline = time.monotonic() + 10
    staged = [(1,)]
    while staged != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.2)
        staged = sql(server, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'clv_staging%'")
    assert staged == [(0,)]
