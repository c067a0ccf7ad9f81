"""The terminal: rich consoles, tables, notices, progress bars, and the printers that more than
one command uses (the cleaning report, the scorecard, which model scores). A printer used by
one command lives beside it."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from clv.errors import ClvError

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
err_console = Console(stderr=True)


def fail(exc: ClvError) -> typer.Exit:
    """Print a :class:`~clv.errors.ClvError` without a traceback; the exit to raise (code 1)."""
    err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A borderless table: the first column left-aligned, the others right-aligned."""
    out = Table(title=title, title_justify="left", show_edge=False)
    for i, col in enumerate(columns):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def print_notices(caught: list[warnings.WarningMessage], notices: list[str] = ()) -> None:
    """Each distinct notice (given, then from warnings) once, on stderr."""
    for message in dict.fromkeys([*notices, *(str(w.message) for w in caught)]):
        err_console.print(f"[yellow]Notice:[/] {message}", highlight=False, soft_wrap=True)


def clv_notices(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """The warnings clv itself raised for the user (:class:`~clv.errors.ClvWarning`)."""
    from clv.errors import ClvWarning

    return [w for w in caught if issubclass(w.category, ClvWarning)]


def print_cleaning(report: Any) -> None:
    """The cleaning report (a :class:`clv.data.CleaningReport` or its dict) and, when rows were
    implausible, which and why."""
    if isinstance(report, dict):
        from clv.data.report import CleaningReport

        report = CleaningReport(**report)
    rows = [list(r) for r in report.rows()]
    console.print(table("Cleaning report", ["rule", "rows"], rows))
    note = report.implausible_note()
    if note:
        err_console.print(f"[yellow]Notice:[/] {note}", highlight=False, soft_wrap=True)


def fmt(value: float, pct: bool = False) -> str:
    """A metric for a table: 4 decimals, or a signed percentage; NaN as a dash."""
    if value is None or value != value:  # NaN
        return "–"
    return f"{value:+.2f} %" if pct else f"{value:.4f}"


def deviance(row: dict[str, Any]) -> str:
    """Poisson deviance for the table: ∞ where a forecast of 0 met a purchase."""
    if "poisson_deviance" not in row:  # a scorecard of an older clv
        return "–"
    value = row["poisson_deviance"]
    return "∞" if value is None else fmt(value)


def print_selection(card: dict[str, Any], mark: Any) -> None:
    """How the candidates fared on each holdout window (when there is more than one) and the
    stacked mixture's weights (:mod:`clv.origins`, :mod:`clv.stacking`)."""
    selection, stacking = card.get("selection", {}), card.get("stacking")
    windows = selection.get("windows", [])
    if len(windows) > 1:
        metric = card.get("selection_metric", "poisson_deviance")
        means = selection["mean_loss"]
        rows = [
            [
                mark(k),
                *(fmt(w[metric].get(k)) for w in windows),
                fmt(means[k]),
                str(selection["wins"].get(k, "")),
            ]
            for k in card["purchases"]  # the purchases table's order
            if k in means
        ]
        heads = [f"to {w['observation_end']}" for w in windows]
        console.print(
            table(
                f"{metric.replace('_', ' ').capitalize()} on each holdout window; the mean chooses",
                ["model", *heads, "mean", "windows won"],
                rows,
            )
        )
    if stacking:
        from clv.evaluation import label

        weights = ", ".join(f"{label(k)} {w:.2f}" for k, w in stacking["weights"].items())
        scores = stacking["log_score"]
        best = max((k for k in scores if k in stacking["weights"]), key=scores.__getitem__)
        console.print(
            f"Stacking weights (holdout log score): {weights}; mean log score "
            f"{scores['stacked']:.4f} stacked ({stacking['judged_on'].split(':')[0]}) vs "
            f"{scores[best]:.4f} {label(best)}, the best single model",
            highlight=False,
        )


def print_scorecard(card: dict[str, Any], chosen: str | None = None) -> None:
    """The holdout scorecard: purchases, value and churn tables (``clv train``, ``evaluate``)."""
    from clv.evaluation import label

    protocol = card["protocol"]
    where = (
        f"calibration to {protocol['calibration_end']}, holdout {protocol['holdout_length']:g} "
        f"{protocol['time_unit']}s to {protocol['observation_end']} "
        f"({protocol['customers']:,} customers)"
    )
    mark = lambda key: label(key) + (" ✓" if key == chosen else "")  # noqa: E731
    rows = [
        [
            mark(k),
            deviance(m),
            fmt(m["rmse"]),
            fmt(m["mae"]),
            fmt(m["spearman"]),
            fmt(m["aggregate_error_pct"], pct=True),
            f"{m['predicted_total']:,.0f}",
            f"{m['actual_total']:,.0f}",
        ]
        for k, m in card["purchases"].items()
    ]
    zero = card.get("zero_forecast")
    if zero is not None:  # MAE's blind spot, shown beside the models
        rows.append(["zero for everyone", "∞", fmt(zero["rmse"]), fmt(zero["mae"])] + [""] * 4)
    criterion = card.get("selection_metric", "mae").replace("_", " ")
    console.print(
        table(
            f"Purchases — {where}; chosen ✓ by {criterion}",
            ["model", "deviance", "RMSE", "MAE", "Spearman", "agg. error", "predicted", "actual"],
            rows,
        )
    )
    print_selection(card, mark)
    if card.get("dropped"):
        names = ", ".join(label(k) for k in card["dropped"])
        console.print(
            f"[yellow]Dropped (did not converge; see the notices):[/] {names}", highlight=False
        )
    if card.get("skipped"):
        from clv.stages import OPTIONAL_STAGES

        names = ", ".join(OPTIONAL_STAGES.get(k, k) for k in card["skipped"])
        console.print(f"[yellow]Skipped (see the notices):[/] {names}", highlight=False)
    if card.get("conditional_expectations"):
        _print_conditional(card["conditional_expectations"])
    if "value" in card:
        _print_value(card["value"])
    if card.get("covariates"):
        print_covariates(card["covariates"], card["purchases"])
    if card.get("spend_covariates", {}).get("converged"):
        _print_spend_covariates(card["spend_covariates"])
    if card.get("intervals"):
        print_interval_calibration(card["intervals"])
    if card.get("churn"):
        _print_churn(card)
    if card.get("churn_note"):
        console.print(f"Churn: {card['churn_note']}", highlight=False)


def _print_conditional(by_frequency: list[dict[str, Any]]) -> None:
    """Mean holdout purchases by calibration frequency, actual against each model."""
    from clv.evaluation import label

    keys = [k for k in by_frequency[0] if k not in ("frequency", "customers")]
    rows = [
        [r["frequency"], f"{r['customers']:,}", *(f"{r[k]:.3f}" for k in keys)]
        for r in by_frequency
    ]
    console.print(
        table(
            "Mean holdout purchases by calibration frequency (actual vs predicted)",
            ["frequency", "customers", *(label(k) if k != "actual" else k for k in keys)],
            rows,
        )
    )


def _print_value(value: dict[str, Any]) -> None:
    """Each forecast's value metrics against the holdout revenue."""
    from clv.evaluation import label

    rows = [
        [
            label(k),
            fmt(m["spearman"]),
            fmt(m["normalized_gini"]),
            fmt(m["top_decile_capture"]),
            f"{m['mae']:.2f}",
        ]
        for k, m in value.items()
    ]
    console.print(
        table(
            "Value (holdout revenue)",
            ["model", "Spearman", "norm. Gini", "top-decile capture", "MAE"],
            rows,
        )
    )


def _print_spend_covariates(spend: dict[str, Any]) -> None:
    """Gamma-Gamma's spend covariates: effects, likelihood ratio and the holdout test."""
    effects = ", ".join(
        f"{name} {c['estimate']:+.3f}" + (f" ± {c['se']:.3f}" if c["se"] else "")
        for name, c in spend["coefficients"].items()
    )
    console.print(
        f"Spend covariates (Gamma-Gamma scale × e^δ): {effects}; likelihood ratio "
        f"{spend['lr_statistic']:.1f} on {spend['lr_df']} df (p {spend['lr_p_value']:.2g}); "
        f"holdout revenue RMSE {spend['plain_revenue_rmse']:.2f} → "
        f"{spend['revenue_rmse']:.2f} (paired z {spend['revenue_gain_z']:.2f}; "
        f"{'used' if spend['used'] else 'not used'})",
        highlight=False,
    )


def _print_churn(card: dict[str, Any]) -> None:
    """The churn comparison on the holdout and the decision taken on the training window."""
    from clv.evaluation import label

    protocol = card["protocol"]
    cp = card["churn_protocol"]
    ev = cp["evaluation_window"]
    rows = [
        [
            label(k) + (" (baseline)" if k == cp["baseline"] else ""),
            fmt(m["roc_auc"]),
            fmt(m["pr_auc"]),
            fmt(m["brier"]),
            fmt(m["ece"]),
        ]
        for k, m in card["churn"].items()
    ]
    title = (
        f"Churn: no purchase in {cp['horizon']:g} {protocol['time_unit']}s after "
        f"{ev['feature_cutoff']} (churn rate {ev['churn_rate']:.1%})"
    )
    console.print(table(title, ["score", "ROC AUC", "PR AUC", "Brier", "ECE"], rows))
    console.print(f"Churn score decision (training window only): {cp['decision']}", highlight=False)


def print_covariates(section: dict[str, Any], purchases: dict[str, Any]) -> None:
    """The scorecard's ``covariates``: each model with and without them, and the effects."""
    from clv.evaluation import label

    rows, effects = [], []
    for kind, fit in section["models"].items():
        if not fit["converged"]:
            rows.append([label(kind), "did not converge", "", "", "", ""])
            continue
        plain, with_ = purchases[kind]["poisson_deviance"], fit["holdout"]["poisson_deviance"]
        rows.append(
            [
                label(kind),
                f"{fit['lr_statistic']:.1f} ({fit['lr_df']} df, p {fit['lr_p_value']:.2g})",
                deviance({"poisson_deviance": plain}),
                deviance({"poisson_deviance": with_}),
                f"{fit['deviance_gain_z']:.2f}",
                "yes" if fit["improved"] else "no",
            ]
        )
        effects.append(
            [label(kind)]
            + [
                f"{c['estimate']:+.3f}" + (f" ± {c['se']:.3f}" if c["se"] else "")
                for c in fit["coefficients"].values()
            ]
        )
    reference = ", ".join(f"{k} = {v}" for k, v in section["reference"].items())
    console.print(
        table(
            "Covariates: each model refitted with them (likelihood ratio on the calibration "
            "period; holdout deviance without → with, paired z of the gain)",
            ["model", "likelihood ratio", "deviance", "with covariates", "z", "improved"],
            rows,
        )
    )
    if effects:
        names = list(next(f for f in section["models"].values() if f["converged"])["coefficients"])
        console.print(
            table(
                "Covariate effects γ ± SE (rate × e^γ per unit"
                + (f"; reference levels {reference})" if reference else ")"),
                ["model", *names],
                effects,
            )
        )


def print_interval_calibration(section: dict[str, Any]) -> None:
    """The scorecard's ``intervals``: coverage by frequency, log score, PIT, totals."""
    from clv.evaluation import label

    level = section["level"]
    rows = [
        [
            g["frequency"],
            f"{g['customers']:,}",
            f"{g['coverage']:.1%}",
            f"{g['expected_coverage']:.1%}",
        ]
        for g in section["by_frequency"]
    ]
    rows.append(["all", "", f"{section['coverage']:.1%}", f"{section['expected_coverage']:.1%}"])
    console.print(
        table(
            f"{label(section['model'])}'s {level:.0%} purchase intervals on the holdout "
            f"(log score {section['log_score']:.4f})",
            ["frequency", "customers", "actual in interval", "model's probability"],
            rows,
        )
    )
    pit = " ".join(f"{share:.3f}" for share in section["pit"])
    console.print(
        f"PIT histogram ({len(section['pit'])} bins; {1 / len(section['pit']):.3f} each "
        f"when calibrated): {pit}",
        highlight=False,
    )
    for name, total in section["totals"].items():
        console.print(
            f"Holdout {name}: {total['actual']:,.0f} actual, {level:.0%} range "
            f"{total['low']:,.0f} – {total['high']:,.0f} around {total['estimate']:,.0f} "
            f"({'inside' if total['inside'] else '[yellow]outside[/]'})",
            highlight=False,
        )


def which_model(uri: str, bundle: Any, default: bool) -> str:
    """One line saying which model scores: its registry version and alias when known."""
    reg = bundle.registry
    where = f"{uri} (the default folder: the last champion `clv train` placed)" if default else uri
    what = (
        f"{reg['registered_model']} v{reg['version']} ({reg['alias']} when trained)"
        if reg
        else "not registered"
    )
    return f"Model: {where} — {what}, {bundle.purchase.name}, trained {bundle.created}"


class ProgressBar:
    """A transient rich progress bar that appears only when the work spans several chunks."""

    def __init__(self, description: str, chunk: int) -> None:
        self._description, self._chunk = description, chunk
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total <= self._chunk:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(console=err_console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reading_bar() -> ProgressBar:
    """The progress bar of reading a log in chunks."""
    from clv.data.clean import PARQUET_CHUNK_ROWS

    return ProgressBar("Reading transactions", PARQUET_CHUNK_ROWS)
