"""MLflow UI smoke test: two `clv train` runs, an MLflow server on 127.0.0.1, headless Chromium.

Usage: ``python scripts/ui_smoke.py [--out DIR]`` (needs Debian's ``chromium``).

1. trains twice on the CDNOW sample (all candidates; BG/NBD only) into a fresh sqlite store;
2. starts ``mlflow server`` on a free loopback port (job execution off, one worker);
3. checks through the REST API that both runs, their scorecard metrics, plot artifacts and
   dataset inputs are there, and that the experiment opens as a model-training one;
4. screenshots the runs page, the compare page of the two runs and the registered model into
   ``DIR``, and checks that the rendered runs table has a Dataset column naming the log;
5. stops the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
    "--hide-scrollbars",
]
PLOTS = {"calibration_vs_holdout.png", "tracking_cumulative.png", "churn_roc.png"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _train(store: Path, uri: str, extra: list[str]) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "clv.cli",
            "train",
            "-t",
            "cdnow-sample",
            "--calibration-end",
            "1997-09-30",
            "--registered-model",
            "clv-ui-smoke",
            *extra,
        ],
        cwd=store,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


@contextmanager
def mlflow_server(backend_uri: str, cwd: Path, *args: str) -> Iterator[str]:
    """Run ``mlflow server`` on a free 127.0.0.1 port (job execution off, one worker) until the
    block ends; yield its base URL once ``/health`` answers."""
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        *args,
    ]
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not answer /health within 60 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


#: The pages saved as pictures (the docs' MLflow guide shows them).
SCREENSHOTS = ("mlflow_runs.png", "mlflow_compare.png", "mlflow_model.png")


def screenshot(chromium: str, url: str, path: Path) -> None:
    """Render ``url`` in headless Chromium and save a PNG."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
            check=True,
            capture_output=True,
            timeout=120,
        )


def dump_dom(chromium: str, url: str) -> str:
    """The page's DOM after its scripts ran (headless Chromium)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.stdout


def main(out: Path) -> dict:
    """Run the smoke test; return what was checked. Raises on any failure."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("headless Chromium not found: apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="clv-ui-"))
    uri = f"sqlite:///{store / 'mlflow.db'}"
    try:
        _train(store, uri, ["--model-dir", str(store / "a")])
        _train(store, uri, ["--model-dir", str(store / "b"), "--seed", "7"])
        with mlflow_server(uri, store) as base:
            return _check_and_screenshot(base, chromium, out)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def _check_and_screenshot(base: str, chromium: str, out: Path) -> dict:
    """Check runs, metrics and plots through the REST API, then screenshot three pages."""
    experiments = post_json(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 50})
    exp = next(e for e in experiments["experiments"] if e["name"] == "clv")
    runs = post_json(
        f"{base}/api/2.0/mlflow/runs/search",
        {
            "experiment_ids": [exp["experiment_id"]],
            "filter": "tags.chosen_model != ''",
        },
    )["runs"]
    if len(runs) != 2:
        raise AssertionError(f"expected 2 training runs, found {len(runs)}")
    ids = [r["info"]["run_id"] for r in runs]
    for run in runs:
        metrics = {m["key"] for m in run["data"]["metrics"]}
        for key in (
            "purchases.chosen.mae",
            "churn.churn_model.roc_auc",
            "value.chosen.normalized_gini",
        ):
            if key not in metrics:
                raise AssertionError(f"run {run['info']['run_id']} lacks metric {key}")
        query = urllib.parse.urlencode({"run_id": run["info"]["run_id"], "path": "plots"})
        files = {
            Path(f["path"]).name
            for f in _get(f"{base}/api/2.0/mlflow/artifacts/list?{query}")["files"]
        }
        if not files >= PLOTS:
            raise AssertionError(f"run {run['info']['run_id']} lacks plots {PLOTS - files}")
        contexts = {
            tag["value"]
            for d in run.get("inputs", {}).get("dataset_inputs", [])
            for tag in d.get("tags", [])
            if tag["key"] == "mlflow.data.context"
        }
        if contexts != {"training", "calibration"}:
            raise AssertionError(f"run {run['info']['run_id']} logs datasets {contexts}")
    kind = {t["key"]: t["value"] for t in exp.get("tags", [])}.get("mlflow.experimentKind")
    if kind != "custom_model_development":
        raise AssertionError(f"the experiment opens as {kind!r}, not a model-training one")
    runs_page = f"{base}/#/experiments/{exp['experiment_id']}/runs"
    compare = (
        f"{base}/#/compare-runs?runs={urllib.parse.quote(json.dumps(ids))}"
        f"&experiments={urllib.parse.quote(json.dumps([exp['experiment_id']]))}"
    )
    screenshot(chromium, runs_page, out / "mlflow_runs.png")
    screenshot(chromium, compare, out / "mlflow_compare.png")
    screenshot(chromium, f"{base}/#/models/clv-ui-smoke", out / "mlflow_model.png")
    page = dump_dom(chromium, runs_page)
    if "cdnow-sample" not in page or "Dataset" not in page:
        raise AssertionError("the runs table shows no Dataset column with the log's name")
    return {
        "experiment": exp["experiment_id"],
        "runs": ids,
        "runs_page": runs_page,
        "compare": compare,
        "screenshots": [str(out / name) for name in SCREENSHOTS],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/ui"))
    print(json.dumps(main(parser.parse_args().out), indent=2))
