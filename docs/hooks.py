"""MkDocs hook: the reference pages generated from the code, so that they cannot drift.

A page that holds ``<!-- clv-reference: cli -->`` gets every ``clv`` command with its options
and their defaults, read from the Typer app; ``<!-- clv-reference: config -->`` gets every
config key with its type, default and description, read from the settings model
(:class:`clv.config.Config`).
"""

from __future__ import annotations

import html
import typing
from typing import Any

MARKERS = {"<!-- clv-reference: cli -->": "cli", "<!-- clv-reference: config -->": "config"}


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each reference marker on a page with its generated text."""
    for marker, kind in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, cli_reference() if kind == "cli" else config())
    return markdown


def _cell(text: str) -> str:
    """Text for a Markdown table cell: HTML-escaped, pipes kept out of the table syntax."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "&#124;")


def cli_reference() -> str:
    """Every command of ``clv``, its help, usage and options, from the Typer app."""
    import typer
    from rich.text import Text

    from clv.cli import app

    group = typer.main.get_command(app)
    parts = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        ctx = command.make_context(name, ["--help"], resilient_parsing=True)
        doc = (command.help or "").strip()
        summary, _, rest = doc.partition("\n\n")
        parts += [f"## clv {name}", "", _cell(summary), ""]
        if rest.strip():
            parts += [" ".join(rest.split()), ""]
        parts += ["| option | value | what it does |", "| --- | --- | --- |"]
        for param in command.params:
            flags = " ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
            value = "" if param.is_flag else param.display_type(ctx)
            helptext = Text.from_markup(getattr(param, "help", "") or "").plain
            parts.append(f"| {flags} | {_cell(value)} | {_cell(helptext)} |")
        parts.append("")
    return "\n".join(parts)


def _type_name(annotation: Any) -> str:
    """A field's type as a reader wants it: ``exclude | error``, ``float or none``."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " &#124; ".join(str(a) for a in args)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest) + " or none"
    if args:
        return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def config() -> str:
    """Every config key by section: type, default and description, from the settings model."""
    from clv.cli.options import shown
    from clv.config import Config

    defaults = Config().model_dump(mode="json")
    parts = []
    for section, field in Config.model_fields.items():
        model = field.annotation
        doc = " ".join((model.__doc__ or "").split())
        parts += [f"## `{section}`", "", doc, "", "| key | type | default | meaning |"]
        parts.append("| --- | --- | --- | --- |")
        for key, sub in model.model_fields.items():
            value = defaults[section][key]
            default = "none" if value is None else shown(value) if value != [] else "[]"
            if isinstance(value, dict):
                default = ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) or "{}"
            parts.append(
                f"| `{section}.{key}` | {_type_name(sub.annotation)} | `{_cell(default)}` | "
                f"{_cell(sub.description or '')} |"
            )
        parts.append("")
    return "\n".join(parts)
