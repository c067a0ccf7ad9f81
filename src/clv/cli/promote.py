"""``clv promote``: make a registered version the champion and serve its bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clv.cli.console import console, fail
from clv.cli.options import ConfigOpt, NameOpt, TrackingUriOpt, default, load_settings
from clv.errors import ClvError


def promote(
    config: ConfigOpt = None,
    name: NameOpt = None,
    version: Annotated[int | None, typer.Option(help="Version to make champion.")] = None,
    run: Annotated[str | None, typer.Option(help="Or: the run that registered it.")] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also place its bundle here, the folder `clv score` serves "
            f"{default('train.model_dir')}."
        ),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Make a registered version the champion, and put its bundle in the served folder."""
    try:
        settings = load_settings(
            config, {"mlflow.tracking_uri": tracking_uri, "train.model_dir": model_dir}
        )
        from clv.bundle import check_bundle_folder, place_bundle
        from clv.mlflow_store import download_bundle
        from clv.tracking import promote as set_champion
        from clv.tracking import registered_model_name

        check_bundle_folder(settings.train.model_dir)  # before the registry changes
        name = name or registered_model_name(settings)
        number = set_champion(name, version, run, settings.mlflow.tracking_uri)
        source = download_bundle(f"models:/{name}/{number}", settings.mlflow.tracking_uri)
        registry = {"registered_model": name, "version": number, "alias": "champion"}
        target = place_bundle(source, settings.train.model_dir, registry)
    except ClvError as exc:
        raise fail(exc) from None
    console.print(f"{name} v{number} is now champion; its bundle is in [bold]{target}[/]")
