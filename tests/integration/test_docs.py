"""The documentation cannot go stale: its snippets run, and the site builds with warnings as errors.

Every ```` ```bash ```` and ```` ```python ```` snippet of the README and of the pages in
``mkdocs.yml``'s navigation runs, in the order of the navigation, in one working folder that
holds a copy of ``configs/`` — as a user follows the pages from a clone. Getting started trains
the main job; later pages use its model. The rules:

- ``python -m pip install …`` is not run again: the test checks that the extras it names exist
  and that ``clv`` is imported from this checkout (``.ci/run`` runs that install itself);
- a snippet identical to one already run is not run twice (the README repeats the quick start);
- the test command itself (``python -m pytest``) is not run from inside the tests;
- a snippet whose first line is ``# not run by the docs tests: <why>`` (a server that runs until
  stopped, a remote database, a cluster, a benchmark of minutes) is not run, and every ``clv``
  command in it must parse against the CLI, so a renamed option still fails here;
- ```` ```yaml ```` snippets must be valid clv config sections.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(bash|python|yaml)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"\A# not run by the docs tests: (?P<why>\S.*)\n")
TEST_COMMAND = "python -m pytest"


def _runnable(language: str, code: str) -> bool:
    return language != "yaml" and not NOT_RUN.match(code) and TEST_COMMAND not in code


INSTALL = re.compile(r"python -m pip install (?P<args>[^&\n]*?)\s*(&&\s*|$)", re.MULTILINE)
pytestmark = pytest.mark.skipif(
    not (ROOT / "mkdocs.yml").is_file(), reason="no mkdocs.yml (not a checkout of clv)"
)


def _nav_pages() -> list[Path]:
    """The README, then the site's pages in the order of its navigation."""

    def walk(item: object) -> list[str]:
        if isinstance(item, str):
            return [item]
        if isinstance(item, dict):
            return [p for value in item.values() for p in walk(value)]
        if isinstance(item, list):
            return [p for value in item for p in walk(value)]
        return []

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return [ROOT / "README.md", *(ROOT / "docs" / page for page in walk(nav))]


def _snippets(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


PAGES = _nav_pages()


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _check_installs(code: str) -> str:
    """The snippet without its ``pip install`` commands, each checked instead of run."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for match in INSTALL.finditer(code):
        args = shlex.split(match.group("args"))
        targets = [a for a in args if not a.startswith("-")]
        assert targets and all(t.split("[")[0] == "." for t in targets), args
        for target in targets:
            named = re.findall(r"\[(.*)\]", target)
            for extra in named[0].split(",") if named else []:
                assert extra in extras, f"pip install names extra {extra!r}: not in pyproject"
    import clv

    assert Path(clv.__file__).resolve().is_relative_to(ROOT / "src"), clv.__file__
    return INSTALL.sub("", code)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    bin_dir = str(Path(sys.executable).parent)
    return env | {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "COLUMNS": "120",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "NO_MKDOCS_2_WARNING": "1",
    }


class Workspace:
    """The folder the pages run in, and the snippets run there so far."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.done: set[str] = set()
        shutil.copytree(ROOT / "configs", folder / "configs")

    def run_page(self, page: Path) -> int:
        """Run the page's snippets; returns how many ran."""
        ran = 0
        for language, code in _snippets(page):
            if not _runnable(language, code) or code in self.done:
                continue
            self.done.add(code)
            if language == "bash":
                command = ["bash", "-euo", "pipefail", "-c", _check_installs(code)]
            else:
                command = [sys.executable, "-c", code]
            result = subprocess.run(
                command,
                cwd=self.folder,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, (
                f"{_name(page)}: snippet failed ({result.returncode}):\n{code}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
            )
            ran += 1
        return ran


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """A folder where Getting started has run (the main job: its model is the later pages')."""
    space = Workspace(tmp_path_factory.mktemp("docs"))
    space.run_page(ROOT / "README.md")
    space.run_page(ROOT / "docs" / "getting-started.md")
    return space


def test_getting_started_is_the_main_job(workspace):
    """The README's main job: CDNOW (23,570 customers), 26-week holdout, MLflow, then scoring."""
    folder = workspace.folder
    manifest = json.loads((folder / "models" / "cdnow" / "bundle.json").read_text())
    assert manifest["model_selection"]["customers"] == 23570
    assert manifest["registry"]["registered_model"] == "clv-cdnow"
    assert manifest["registry"]["alias"] == "champion"
    scores = dict(manifest["model_selection"]["scores"])
    naive = scores.pop("naive")
    assert naive["actual_total"] == 12320
    for s in scores.values():  # every BTYD model beats the naive rate on a real cutoff
        assert s["mae"] < naive["mae"] - 0.05
        assert s["poisson_deviance"] < 1.2  # the naive rate's is infinite
        assert abs(s["aggregate_error_pct"]) < 10 < abs(naive["aggregate_error_pct"])
    churn = manifest["scorecard"]["churn"]
    assert churn["churn_model"]["roc_auc"] > churn["bgnbd_p_no_purchase"]["roc_auc"]
    scored = pd.read_csv(folder / "scores" / "cdnow.csv")
    assert len(scored) == 23570
    assert set(scored["value_segment"]) == {"top", "high", "rest"}
    assert scored["churn_probability"].between(0, 1).all()
    assert (folder / "mlflow.db").is_file()


LATER = [p for p in PAGES[2:] if any(lang != "yaml" for lang, _ in _snippets(p))]


@pytest.mark.parametrize("page", LATER, ids=_name)
def test_the_snippets_of_each_page_run(workspace, page):
    runnable = [code for lang, code in _snippets(page) if _runnable(lang, code)]
    ran = workspace.run_page(page)
    assert ran + sum(code in workspace.done for code in runnable) >= len(runnable)


def _clv_commands(code: str) -> list[list[str]]:
    """The ``clv …`` commands of a shell snippet, continuation lines joined."""
    joined = code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        for part in re.split(r"&&|\|", line.split(" #")[0]):
            if part.strip().startswith("clv "):
                commands.append(shlex.split(part)[1:])
    return commands


def test_snippets_not_run_say_why_and_their_commands_parse():
    import typer

    from clv.cli import app

    group = typer.main.get_command(app)
    not_run = parsed = 0
    for page in PAGES:
        for language, code in _snippets(page):
            match = NOT_RUN.match(code)
            if language == "yaml" or not match:
                continue
            not_run += 1
            for words in _clv_commands(code):
                command = group.commands[words[0]]  # type: ignore[attr-defined]
                command.make_context(words[0], words[1:])  # raises on an unknown option
                parsed += 1
    assert 0 < not_run <= 12 and parsed >= 7


def test_yaml_snippets_are_config_sections():
    from clv.config import Config

    checked = 0
    for page in PAGES:
        for language, code in _snippets(page):
            if language == "yaml":
                Config.model_validate(yaml.safe_load(code))
                checked += 1
    assert checked >= 1


def test_every_page_of_the_site_is_in_its_navigation():
    pages = {p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md")}
    assert pages == {p.relative_to(ROOT / "docs") for p in PAGES[1:]}


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")  # the docs extra, in the dev extra
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    reference = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "--customer-col" in reference and "[default: customer_id]" in reference
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "score_transactions" in api
