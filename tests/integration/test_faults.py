"""Faults are inputs too: kills at random moments, two runs at once, a tracking store that is
not there or goes away. Real processes, real signals, a real MLflow server; no mocks.

Each kill is a SIGKILL, which a process cannot catch: whatever it leaves is what power loss or
the OOM killer would leave. The folder must then hold one whole bundle (the old one or the new
one, its files matching the manifest's SHA-256), and what the killed process left beside it
(hidden, tagged with its pid) must be removed by the next run that writes there.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from clv.bundle import BOOSTER, MANIFEST, load_bundle, save_bundle
from clv.errors import BundleError
from clv.locks import LockedError, folder_lock, lock_path

CLV = [sys.executable, "-m", "clv.cli"]
FAST = """
train:
  candidates: [bgnbd]
kpis:
  in_train: false
"""
#: How the hidden leftovers of a killed run are named (see clv.tables.leftover_name).
LEFTOVER = re.compile(r"^\.(?P<name>.+?)\.(?P<tag>[a-z]+)-(?P<pid>\d+)-[0-9a-f]{8}(\.tmp)?$")


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLV_DUCKDB_TEMP_DIRECTORY": str(tmp_path / "spill"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _clv(*args: str, cwd: Path, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLV, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _leftovers(folder: Path, name: str) -> list[Path]:
    """Hidden temporary siblings of ``folder/name`` and its lock file."""
    return [
        p
        for p in folder.iterdir()
        if ((m := LEFTOVER.match(p.name)) and m["name"] == name) or p.name == f".{name}.lock"
    ]


def _assert_only_leftovers_of(killed: set[int], folder: Path, name: str) -> None:
    """Beside ``folder/name`` there is nothing but hidden leftovers of killed processes (which
    could not clean up; a process killed before it wrote anything did not sweep either)."""
    for left in _leftovers(folder, name):
        match = LEFTOVER.match(left.name)
        assert left.name == f".{name}.lock" or int(match["pid"]) in killed, left


def _train(cfg: Path, model_dir: str | Path, *extra: str) -> list[str]:
    """Arguments of a fast `clv train` (one candidate, no KPI report) on the CDNOW sample."""
    return ["train", "-c", str(cfg), "-t", "cdnow-sample", "--model-dir", str(model_dir), *extra]


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(FAST)
    return path


# --- whole bundles --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory):
    """Two bundles that differ in every file: a real one with a LightGBM booster (full CDNOW,
    one candidate) and a copy with another booster text, scorecard and creation time."""
    from clv.config import Config
    from clv.training import train

    folder = tmp_path_factory.mktemp("bundles")
    config = Config().with_overrides(
        {
            "train.candidates": ["bgnbd"],
            "kpis.in_train": False,
            "mlflow.enabled": False,
            "train.model_dir": str(folder / "a"),
        }
    )
    a = train(config).bundle
    assert a.churn is not None and a.churn.booster_text is not None
    b = replace(
        a,
        churn=replace(a.churn, booster_text=a.churn.booster_text + "\n"),
        scorecard={**a.scorecard, "note": "b"},
        created="b",
    )
    save_bundle(b, folder / "b")
    return folder / "a", folder / "b"


def test_a_mixed_or_edited_bundle_is_refused_naming_the_file(two_bundles, tmp_path):
    a, b = two_bundles
    mixed = Path(shutil.copytree(a, tmp_path / "mixed"))
    (mixed / BOOSTER).write_bytes((b / BOOSTER).read_bytes())  # b's booster beside a's manifest
    with pytest.raises(BundleError, match=rf"{BOOSTER} does not match the bundle's manifest"):
        load_bundle(mixed)
    (mixed / BOOSTER).unlink()
    with pytest.raises(BundleError, match=rf"{BOOSTER} is missing"):
        load_bundle(mixed)


def test_a_version_1_bundle_without_hashes_still_loads(two_bundles, tmp_path):
    a, _ = two_bundles
    old = Path(shutil.copytree(a, tmp_path / "old"))
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["files"], manifest["checksum"]
    manifest["format_version"] = 1
    (old / MANIFEST).write_text(json.dumps(manifest))
    assert load_bundle(old).to_dict() == load_bundle(a).to_dict()


def test_a_version_2_bundle_without_its_own_checksum_still_loads(two_bundles, tmp_path):
    a, _ = two_bundles
    old = Path(shutil.copytree(a, tmp_path / "old"))
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["checksum"]
    manifest["format_version"] = 2
    (old / MANIFEST).write_text(json.dumps(manifest))
    assert load_bundle(old).to_dict() == load_bundle(a).to_dict()


SAVE_LOOP = """
import sys
from clv.bundle import load_bundle, save_bundle
a, b, target = load_bundle(sys.argv[1]), load_bundle(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
while True:
    save_bundle(a, target)
    save_bundle(b, target)
"""


def test_save_bundle_killed_at_random_moments_leaves_one_whole_bundle(two_bundles, tmp_path):
    """40 SIGKILLs of a process that does nothing but replace the bundle (A, B, A, …): most
    land inside a write. Each time the folder holds A or B whole, and the leftovers are the
    killed process's hidden folders only, which the next save removes."""
    a, b = two_bundles
    created = {load_bundle(a).created, load_bundle(b).created}
    target = tmp_path / "models" / "m"
    save_bundle(load_bundle(a), target)
    rng = random.Random(11)
    outcomes = {"a": 0, "b": 0}
    killed: set[int] = set()
    for _ in range(40):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(a), str(b), str(target)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.add(proc.pid)
        bundle = load_bundle(target)  # verifies every file against the manifest's SHA-256
        assert bundle.created in created
        outcomes["a" if bundle.created == load_bundle(a).created else "b"] += 1
        _assert_only_leftovers_of(killed, target.parent, "m")
    print(f"save_bundle: {len(killed)} kills, folder held {outcomes}")
    assert min(outcomes.values()) > 0, outcomes  # the kills landed in both phases
    save_bundle(load_bundle(b), target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]


def test_clv_train_and_score_killed_at_random_moments(tmp_path):
    """`clv train` killed at random moments over a whole run (reading, fitting, churn, bundle):
    the model folder holds the previous bundle or the new one, whole. `clv score` killed the
    same way: the score file is the previous one or the new one, byte for byte."""
    env, cfg = _env(tmp_path), _config(tmp_path)
    target = tmp_path / "models" / "m"
    base = _train(cfg, target, "--no-mlflow")

    started = time.perf_counter()
    done = subprocess.run(
        [*CLV, *base, "--seed", "0"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    full = time.perf_counter() - started
    seeds = [load_bundle(target).config["train"]["seed"]]
    rng = random.Random(5)
    killed: set[int] = set()
    for seed in range(1, 9):
        proc = _clv(*base, "--seed", str(seed), cwd=tmp_path, env=env)
        time.sleep(rng.uniform(0.2, full * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed.add(proc.pid)
        now = load_bundle(target).config["train"]["seed"]
        assert now in (seeds[-1], seed)  # the old bundle or the new one, whole
        seeds.append(now)
        _assert_only_leftovers_of(killed, target.parent, "m")
    print(f"clv train: {len(killed)} kills, bundle seeds after each {seeds[1:]}")
    done = subprocess.run(
        [*CLV, *base, "--seed", "99"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]

    out = tmp_path / "scores" / "s.csv"
    score = ["score", "-m", str(target), "-t", "cdnow-sample", "--out", str(out)]
    refs = {}
    for horizon in ("26", "52"):
        done = subprocess.run(
            [*CLV, *score, "--horizon", horizon],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        refs[horizon] = out.read_bytes()
    assert refs["26"] != refs["52"]
    kept: list[str] = []
    for i in range(8):
        horizon = ("26", "52")[i % 2]
        proc = _clv(*score, "--horizon", horizon, cwd=tmp_path, env=env)
        time.sleep(rng.uniform(0.2, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed.add(proc.pid)
        assert out.read_bytes() in refs.values()
        kept.append(next(h for h, ref in refs.items() if out.read_bytes() == ref))
        _assert_only_leftovers_of(killed, out.parent, "s.csv")
    print(f"clv score: 8 kills, file held the horizon-{kept} scores after each")
    done = subprocess.run(
        [*CLV, *score, "--horizon", "52"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and out.read_bytes() == refs["52"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.csv"]
    assert not any((tmp_path / "spill").iterdir())  # DuckDB spill folders of killed runs: gone


# --- two runs at once -----------------------------------------------------------------------


def test_the_lock_names_its_holder_and_is_reentrant(tmp_path):
    folder = tmp_path / "m"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from clv.locks import folder_lock
                with folder_lock({str(folder)!r}, purpose="a test holder"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockedError, match=rf"pid {holder.pid} .*a test holder"),
            folder_lock(folder, wait=0.5),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder), folder_lock(folder):  # free once the holder is gone; re-entrant
        assert lock_path(folder).is_file()
    assert not lock_path(folder).exists()


def test_a_holder_that_has_not_yet_written_its_line_is_still_named(tmp_path):
    """The holder writes its pid just after taking the lock; a run that finds the lock taken in
    between reads again rather than settling for "another process" (a CI run met this)."""
    folder = tmp_path / "m"
    path = lock_path(folder)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, json, os, time
                fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("locked", flush=True)
                time.sleep(0.5)  # the window a real holder has between flock and write
                os.write(fd, json.dumps({{"pid": os.getpid(), "command": "slow writer",
                                          "since": "now"}}).encode())
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert path.read_text() == ""  # we are inside the window
        with (
            pytest.raises(LockedError, match=rf"pid {holder.pid} \(`slow writer`"),
            folder_lock(folder),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_two_trainings_of_one_folder_and_a_fresh_store(tmp_path):
    """Two `clv train` at once into one model folder, both against a new sqlite store: one
    trains, the other stops at once naming it; with --wait both train, one after the other.
    Two runs into different folders against another new store: both succeed."""
    env, cfg = _env(tmp_path), _config(tmp_path)

    def pair(store: str, dirs: tuple[str, str], *extra: str) -> list[tuple]:
        procs = [
            _clv(
                *_train(cfg, d, "--tracking-uri", f"sqlite:///{tmp_path / store}", *extra),
                cwd=tmp_path,
                env=env,
            )
            for d in dirs
        ]
        return [(p, *p.communicate(timeout=600)) for p in procs]

    results = pair("one.db", ("models/m", "models/m"))
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 1], [(p.returncode, err[-2000:]) for p, _, err in results]
    loser = next((p, err) for p, _, err in results if p.returncode == 1)
    winner = next(p for p, _, _ in results if p.returncode == 0)
    assert f"is being written by pid {winner.pid}" in " ".join(loser[1].split()), loser[1]
    assert "Traceback" not in loser[1]
    load_bundle(tmp_path / "models" / "m")

    results = pair("one.db", ("models/m", "models/m"), "--wait", "300")
    assert [p.returncode for p, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]

    results = pair("two.db", ("models/x", "models/y"))
    assert [p.returncode for p, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    # one log, one registered model: the second to register is a challenger in <dir>-v2
    placed = [load_bundle(p).registry for p in sorted((tmp_path / "models").glob("[xy]*"))]
    assert sorted((r["version"], r["alias"]) for r in placed) == [
        (1, "champion"),
        (2, "challenger"),
    ]


# --- the tracking store ---------------------------------------------------------------------


def test_no_server_stops_before_any_work_naming_the_uri(tmp_path):
    env, cfg = _env(tmp_path), _config(tmp_path)
    started = time.perf_counter()
    done = subprocess.run(
        [*CLV, *_train(cfg, "models/m", "--tracking-uri", "http://127.0.0.1:9")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    err = " ".join(done.stderr.split())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "MLflow tracking server http://127.0.0.1:9: no answer" in err
    assert "--no-mlflow" in err
    assert "Read and cleaned" not in done.stdout  # stopped before any work
    assert elapsed < 30
    assert list((tmp_path / "models").iterdir()) == []  # nothing written, the lock let go


def test_a_server_that_dies_mid_run_keeps_the_bundle(tmp_path, ui_smoke):
    """A real MLflow server, stopped once the run has started: the trained bundle is kept
    whole at <model_dir>-unlogged and the message says where and how to go on."""
    env, cfg = _env(tmp_path), _config(tmp_path)
    (tmp_path / "store").mkdir()
    server = ui_smoke.mlflow_server(
        f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", tmp_path / "store"
    )
    uri = server.__enter__()
    try:
        proc = _clv(*_train(cfg, "models/m", "--tracking-uri", uri), cwd=tmp_path, env=env)
        first = proc.stdout.readline()  # the first stage line: the store check has passed
        assert "Read and cleaned" in first, first
    finally:
        server.__exit__(None, None, None)
    _, err = proc.communicate(timeout=600)
    err = " ".join(err.split())
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    kept = tmp_path / "models" / "m-unlogged"
    assert f"kept, unregistered, at {kept.relative_to(tmp_path)}" in err or str(kept) in err, err
    assert "clv score --model" in err and "--no-mlflow" in err
    bundle = load_bundle(kept)
    assert bundle.registry == {} and bundle.config["train"]["candidates"] == ["bgnbd"]
    assert not (tmp_path / "models" / "m").exists()  # the served folder was never touched
