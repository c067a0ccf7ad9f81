"""``clv models``: a registered model's versions, aliases and decisions."""

from __future__ import annotations

from clv.cli.console import console, fail, table
from clv.cli.options import ConfigOpt, NameOpt, TrackingUriOpt, load_settings
from clv.errors import ClvError


def models(
    config: ConfigOpt = None,
    name: NameOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """List a registered model's versions: alias, champion metric, data window and decision."""
    try:
        settings = load_settings(config, {"mlflow.tracking_uri": tracking_uri})
        from clv.tracking import model_versions, registered_model_name

        name = name or registered_model_name(settings)
        rows = model_versions(name, settings.mlflow.tracking_uri)
    except ClvError as exc:
        raise fail(exc) from None
    cells = [
        [
            f"v{r['version']}",
            ", ".join(r["aliases"]) or "–",
            r["chosen_model"],
            f"{r['metric']} {r['value']:.4f}" if r["value"] is not None else "–",
            r["data"],
            r["decision"],
        ]
        for r in rows
    ]
    columns = ["version", "alias", "model", "champion metric", "data", "decision"]
    console.print(table(f"Registered model {name}", columns, cells))
