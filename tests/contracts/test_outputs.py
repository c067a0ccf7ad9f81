"""Output paths that cannot destroy a user's file, checked before any work.

Each refusal leaves every file of the user byte-identical, and says which path, why, and what to
choose instead. The positive cases (a new, empty or bundle folder; an output beside the input)
still write.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clv.bundle import MANIFEST, Bundle, check_bundle_folder, save_bundle
from clv.cli import app
from clv.models.fitting import fit_purchase_model
from clv.outputs import OutputPathError, check_not_input, check_replaceable_folder, not_of_spark

runner = CliRunner()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def home(tmp_path, monkeypatch, sample_log) -> Path:
    """A working folder with the user's log (the CDNOW sample as CSV) and a folder of theirs."""
    monkeypatch.chdir(tmp_path)
    sample_log.frame.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders_2019.csv").write_text("customer_id,date\n1,2019-01-01\n")
    return tmp_path


@pytest.fixture(scope="module")
def bundle(sample_split, sample_log) -> Bundle:
    return Bundle(
        purchase=fit_purchase_model("bgnbd", sample_split, "week"),
        spend=None,
        config={},
        fingerprint=sample_log.fingerprint(),
    )


def _refused(args: list[str], pattern: str, folder: Path) -> None:
    before = _digests(folder)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert pattern in " ".join(result.output.split()), result.output
    assert _digests(folder) == before  # nothing of the user's touched, nothing new written


@pytest.mark.parametrize(
    ("model_dir", "pattern"),
    [
        ("data", "already holds files that are not a clv model bundle (orders_2019.csv)"),
        (".", "is the working folder"),
        ("..", "a folder that holds the working folder"),
        ("/", "is the root of the file system"),
        ("~", "is your home folder"),
        ("here/..", "is the working folder"),
    ],
)
def test_train_refuses_a_folder_it_would_destroy(home, model_dir, pattern):
    model_dir = str(Path.home()) if model_dir == "~" else model_dir
    args = ["train", "--transactions", "log.csv", "--no-mlflow", "--model-dir", model_dir]
    _refused(args, pattern, home)


def test_train_refuses_the_folder_that_holds_its_log_or_config(home):
    (home / "data" / "log.csv").write_bytes((home / "log.csv").read_bytes())
    args = ["train", "--transactions", "data/log.csv", "--no-mlflow", "--model-dir", "data"]
    _refused(args, "holds the input data/log.csv", home)
    (home / "conf").mkdir()
    (home / "conf" / "run.yaml").write_text("train:\n  holdout: 26\n")
    args = ["train", "--config", "conf/run.yaml", "--transactions", "log.csv", "--no-mlflow"]
    _refused([*args, "--model-dir", "conf"], "holds the input conf/run.yaml", home)


def test_a_symlinked_or_file_model_dir_is_refused(home):
    (home / "models").symlink_to(home / "data")
    args = ["train", "--transactions", "log.csv", "--no-mlflow", "--model-dir", "models"]
    _refused(args, "is a symbolic link", home)
    _refused([*args[:-1], "log.csv"], "is a file", home)


def test_score_refuses_to_write_over_an_input(home, bundle):
    save_bundle(bundle, home / "m")
    base = ["score", "--model", "m", "--transactions", "log.csv"]
    _refused(
        [*base, "--out", "log.csv"], "--out log.csv is the same file as the input log.csv", home
    )
    _refused([*base, "--out", "./data/../log.csv"], "is the same file as the input log.csv", home)
    os.symlink(home / "log.csv", home / "link.csv")
    link = ["score", "--model", "m", "--transactions", "link.csv", "--out", "log.csv"]
    _refused(link, "is the same file as the input link.csv", home)
    _refused([*base, "--out", f"m/{MANIFEST}"], f"is the same file as the input m/{MANIFEST}", home)
    (home / "ids.csv").write_text("customer_id\n1\n")
    listed = [*base, "--customers", "ids.csv", "--out", "ids.csv"]
    _refused(listed, "is the same file as the input ids.csv", home)


def test_kpis_prepare_and_evaluate_refuse_to_write_over_an_input(home):
    (home / "rep").mkdir()
    (home / "rep" / "monthly.csv").write_bytes((home / "log.csv").read_bytes())
    args = ["kpis", "--transactions", "rep/monthly.csv", "--out", "rep"]
    _refused(args, "rep/monthly.csv is the same file as the input rep/monthly.csv", home)
    (home / "prep").mkdir()
    (home / "prep" / "rfm.parquet").write_bytes(b"PAR1")
    args = ["prepare", "--transactions", "prep/rfm.parquet", "--out", "prep"]
    _refused(args, "is the same file as the input prep/rfm.parquet", home)
    args = ["evaluate", "--transactions", "log.csv", "--out", "log.csv"]
    _refused(args, "is the same file as the input log.csv", home)


def test_train_writes_a_new_an_empty_or_a_bundle_folder(home, bundle):
    save_bundle(bundle, home / "old")
    (home / "empty").mkdir()
    for folder in ("new/models", "empty", "old"):
        check_bundle_folder(home / folder, [home / "log.csv"])  # no refusal
    result = runner.invoke(
        app, ["train", "--transactions", "log.csv", "--no-mlflow", "--model-dir", "empty"]
    )
    assert result.exit_code == 0, result.output
    assert (home / "empty" / MANIFEST).is_file()
    assert (home / "data" / "orders_2019.csv").is_file()


def test_a_bundle_with_a_file_of_the_users_is_not_replaced(home, bundle):
    path = save_bundle(bundle, home / "m")
    (path / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"not a clv model bundle \(notes.txt\)"):
        save_bundle(bundle, path)
    assert (path / "notes.txt").read_text() == "mine"


def test_a_damaged_bundle_of_clvs_own_can_be_retrained_over(home, bundle):
    path = save_bundle(bundle, home / "m")
    (path / MANIFEST).write_text("[" * 1000)
    assert save_bundle(bundle, path) == path  # "retrain the model" must be possible


def test_same_file_compares_inodes_and_paths(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("x")
    os.link(log, tmp_path / "hard.csv")
    for out in (log, tmp_path / "a" / ".." / "log.csv", tmp_path / "hard.csv"):
        with pytest.raises(OutputPathError, match="same file as the input"):
            check_not_input([out], [log], "--out")
    check_not_input([tmp_path / "other.csv"], [log], "--out")  # a new file beside it is fine


def test_a_spark_output_folder_is_replaced_only_when_it_is_sparks(tmp_path):
    spark = tmp_path / "scores"
    spark.mkdir()
    for name in ("part-00000-x.snappy.parquet", "_SUCCESS", ".part-00000-x.snappy.parquet.crc"):
        (spark / name).write_bytes(b"")
    check_replaceable_folder(spark, not_of_spark, "a Spark score folder", option="--out")
    (spark / "mine.xlsx").write_bytes(b"")
    with pytest.raises(OutputPathError, match=r"not a Spark score folder \(mine.xlsx\)"):
        check_replaceable_folder(spark, not_of_spark, "a Spark score folder", option="--out")
