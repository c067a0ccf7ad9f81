"""``clv <command> --help`` shows every option's default, as the settings model declares it.

Rich reads ``[customer_id]`` as a markup tag and drops it; these tests read the help as a user
sees it (rendered by rich, wide enough not to wrap) and look for each default there.
"""

from __future__ import annotations

import importlib

import pytest
import typer
from typer.testing import CliRunner

from clv.cli import app
from clv.cli.options import shown
from clv.config import Config

COMMANDS = ["train", "evaluate", "score", "prepare", "kpis", "monitor"]


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def _option_lines(command: str) -> dict[str, str]:
    """Each option's rendered row, keyed by its parameter name."""
    group = typer.main.get_command(app)
    params = group.commands[command].params  # type: ignore[attr-defined]
    lines = _help(command).splitlines()
    rows: dict[str, str] = {}
    for param in params:
        flag = next(o for o in param.opts if o.startswith("--"))
        row = [line for line in lines if line.lstrip("│ ").startswith(f"{flag} ")]
        assert len(row) == 1, f"{command} {flag}: {len(row)} help rows"
        rows[param.name] = row[0]
    return rows


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_config_key_shows_its_default(command: str) -> None:
    keys = importlib.import_module(f"clv.cli.{command}").KEYS
    defaults = Config().model_dump(mode="json")
    rows = _option_lines(command)
    checked, missing = 0, []
    for name, key in keys.items():
        if name not in rows:
            continue
        section, _, field = key.partition(".")
        value = defaults[section][field]
        expected = "[default: " if value is None else f"[default: {shown(value)}]"
        if expected not in rows[name]:
            missing.append(f"{name} ({key} = {value!r}): {rows[name].strip('│ ')}")
        checked += 1
    assert not missing, f"clv {command} --help lacks defaults:\n" + "\n".join(missing)
    assert checked >= 5, f"clv {command}: only {checked} options checked"


def test_the_bracketed_default_survives_rich_markup() -> None:
    row = _option_lines("train")["customer_col"]
    assert "Customer id column [default: customer_id]." in row
