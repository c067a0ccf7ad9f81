"""The committed notebooks are the jupytext twins of their .py sources (nbmake runs them)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.py"))


def test_notebooks_follow_the_naming_convention():
    assert [p.stem[:3] for p in SOURCES] == ["01-", "02-", "03-"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_matches_its_py_source(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"run: jupytext --to ipynb --set-kernel python3 {source}"
    py_cells = [(c.cell_type, c.source) for c in jupytext.read(source).cells]
    nb_cells = [(c.cell_type, c.source) for c in jupytext.read(paired).cells]
    assert py_cells == nb_cells, f"{paired.name} is stale: jupytext --sync {source}"
    assert all(not c.get("outputs") for c in jupytext.read(paired).cells if c.cell_type == "code")
