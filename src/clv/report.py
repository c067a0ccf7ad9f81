"""The KPI report: one self-contained HTML file (tables and PNG charts inlined) plus JSON and CSV.

The HTML needs no network and no other file: charts are PNGs embedded as base64 data URIs and
the style sheet is inline, so it can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from clv.kpis import KpiReport, figure
from clv.tables import write_json, write_table, write_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2933;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d9e2ec}
.muted{color:#627d98;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d9e2ec;border-radius:8px;padding:.6rem 1rem;min-width:150px}
.card b{display:block;font-size:1.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e4e7eb;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
img{max-width:100%;margin:.5rem 0}
.scroll{overflow-x:auto}
"""


def png_data_uri(fig: Figure) -> str:
    """A figure as a PNG ``data:`` URI, for an offline HTML page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if abs(value) < 10:
            return f"{value:,.3f}"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, percent: tuple[str, ...] = ()) -> str:
    """A table as HTML: numbers formatted, the ``percent`` columns as percentages."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = [
            f"<td>{row[c]:.1%}</td>"
            if c in percent and pd.notna(row[c])
            else f"<td>{_fmt(row[c])}</td>"
            for c in frame.columns
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "".join(rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='scroll'>{table}</div>"


def _chart(width: float = 9.0, height: float = 3.4) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def charts(report: KpiReport) -> dict[str, Figure]:
    """The report's charts by file name."""
    out = {}
    m = report.monthly
    fig, ax = _chart()
    ax.plot(m["month"], m["active_end"], label="active at month end")
    ax.bar(m["month"], m["new"], alpha=0.5, label="new")
    ax.bar(m["month"], -m["lost"], alpha=0.5, label="lost (negative)")
    ax.set(title="Customers per month", ylabel="customers")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.legend()
    out["customers.png"] = fig
    fig, ax = _chart()
    ax.plot(m["month"], m["churn_rate"], label="churn rate")
    ax.plot(m["month"], m["retention_rate"], label="retention rate")
    ax.plot(m["month"], m["repeat_purchase_rate"], label="repeat-purchase rate")
    ax.set(title="Monthly rates", ylim=(0, 1.05))
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.legend()
    out["rates.png"] = fig
    fig, ax = _chart()
    ax.plot(m["month"], m["revenue"], marker=".", label="actual revenue")
    if report.forecast is not None:
        ax.plot(
            report.forecast["month"],
            report.forecast["expected_revenue"],
            "--",
            marker=".",
            label="forecast (existing customers)",
        )
    ax.set(title="Monthly revenue: history and forecast", ylabel="revenue")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.legend()
    out["revenue.png"] = fig
    if report.forecast is not None and "cumulative_low" in report.forecast:
        f, level = report.forecast, report.summary["forecast"]["level"]
        fig, ax = _chart()
        ax.fill_between(
            f["month"],
            f["cumulative_low"],
            f["cumulative_high"],
            alpha=0.3,
            label=f"{level:.0%} range",
        )
        ax.plot(f["month"], f["cumulative_revenue"], marker=".", label="expected")
        ax.set(title="Forecast revenue of existing customers, cumulative", ylabel="revenue")
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax.legend(loc="upper left")
        out["forecast.png"] = fig
    s = report.segments
    fig, ax = _chart(6.0, 3.2)
    x = range(len(s))
    ax.bar([i - 0.2 for i in x], s["share_of_customers"], 0.4, label="share of customers")
    ax.bar([i + 0.2 for i in x], s["share_of_revenue"], 0.4, label="share of revenue")
    ax.set_xticks(list(x), s["segment"])
    ax.set(title="Value segments", ylim=(0, 1))
    ax.legend()
    out["segments.png"] = fig
    if report.nps_monthly is not None and len(report.nps_monthly):
        fig, ax = _chart()
        ax.bar(report.nps_monthly["month"], report.nps_monthly["nps"])
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(title="NPS by month", ylim=(-100, 100))
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        out["nps.png"] = fig
    if report.servqual is not None:
        fig, ax = _chart(6.0, 3.2)
        q = report.servqual
        ax.barh(
            q["dimension"], q["gap"], color=["#c0392b" if g < 0 else "#27ae60" for g in q["gap"]]
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set(title="SERVQUAL gap (perception − expectation)")
        out["servqual.png"] = fig
    return out


def _cards(summary: dict[str, Any]) -> str:
    p, c = summary["period"], summary["simple_clv"]
    items = [
        ("churn rate", figure(p["churn_rate"], ".1%", "churn_rate")),
        ("retention rate", figure(p["retention_rate"], ".1%", "retention_rate")),
        ("new customers / month", f"{p['acquisition_rate_per_month']:,.0f}"),
        ("repeat-purchase rate", figure(p["repeat_purchase_rate"], ".1%", "repeat_purchase_rate")),
        (
            "revenue per customer (annual)",
            figure(p["annual_revenue_per_customer"], ",.2f", "annual_revenue_per_customer"),
        ),
        ("simple CLV", figure(c["simple_clv"], ",.2f", "simple_clv")),
    ]
    if "clv_to_cac" in c:
        items.append(("CLV : CAC", figure(c["clv_to_cac"], ".2f", "clv_to_cac")))
    if "nps" in summary:
        score = summary["nps"]["nps"]
        items.append(("NPS", "none" if score is None else f"{score:+.0f}"))
    if "servqual" in summary:
        items.append(("SERVQUAL weighted gap", f"{summary['servqual']['weighted_gap']:+.2f}"))
    return (
        "<div class='cards'>"
        + "".join(f"<div class='card'>{k}<b>{v}</b></div>" for k, v in items)
        + "</div>"
    )


def render_html(report: KpiReport, title: str = "Customer KPIs") -> str:
    """The whole report as one HTML document."""
    from clv import kpis

    images = {name: png_data_uri(fig) for name, fig in charts(report).items()}
    s = report.summary
    p = s["period"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='muted'>As of {s['as_of']}; period {p['from']} .. {p['to']} "
        f"({p['months']} months); a customer is lost after "
        f"{html.escape(s['lost_definition'])}.</p>",
        _cards(s),
        "<h2>Customers and churn</h2>",
        f"<p>Churn rate = customers lost in the period ({p['customers_lost']:,}) ÷ average active "
        f"customers ({p['average_active_customers']:,.0f}) = "
        f"<b>{html.escape(figure(p['churn_rate'], '.1%', 'churn_rate'))}</b>.</p>",
        f"<img alt='customers per month' src='{images['customers.png']}'>",
        f"<img alt='monthly rates' src='{images['rates.png']}'>",
        html_table(
            report.monthly.tail(p["months"]),
            percent=("churn_rate", "retention_rate", "repeat_purchase_rate"),
        ),
        "<h2>Simple CLV</h2>",
        "<p>annual revenue per customer × expected lifetime (years) − acquisition cost.</p>",
        html_table(pd.DataFrame([{k: v for k, v in s["simple_clv"].items()}])),
    ]
    if report.channels is not None:
        parts += ["<h3>By acquisition channel</h3>", html_table(report.channels)]
    parts += [
        f"<h2>Value segments</h2><p class='muted'>Ranked by {html.escape(s['segments_by'])}.</p>",
        f"<img alt='value segments' src='{images['segments.png']}'>",
        html_table(report.segments, percent=tuple(c for c in report.segments if "share" in c)),
        "<h2>Revenue</h2>",
        f"<img alt='revenue history and forecast' src='{images['revenue.png']}'>",
    ]
    if report.forecast is not None:
        f = s["forecast"]
        parts += [
            f"<p>Forecast revenue over {f['months']} months: <b>{f['expected_revenue']:,.0f}</b>"
            f" ({f['level']:.0%} range {f['low']:,.0f} – {f['high']:,.0f}: the customers' own "
            "randomness and the models' parameter uncertainty).</p>",
            f"<img alt='cumulative forecast with its range' src='{images['forecast.png']}'>",
            f"<p class='muted'>Forecast: {html.escape(f['scope'])}.</p>",
            html_table(report.forecast),
        ]
    if report.nps_monthly is not None:
        n = s["nps"]
        parts.append("<h2>Net Promoter Score</h2>")
        if n["nps"] is None:
            dates = n.get("survey_dates")
            seen = f" (the survey's run from {dates[0]} to {dates[1]})" if dates else ""
            parts.append(
                f"<p>Last {p['months']} months: no survey answers fall in this period{seen}.</p>"
            )
        else:
            parts.append(
                f"<p>Last {p['months']} months: {n['responses']:,} answers, "
                f"{n['promoters_pct']:.0f} % promoters, {n['passives_pct']:.0f} % passives, "
                f"{n['detractors_pct']:.0f} % detractors → NPS <b>{n['nps']:+.0f}</b>.</p>"
            )
        if "nps.png" in images:
            parts.append(f"<img alt='NPS by month' src='{images['nps.png']}'>")
        parts.append(html_table(report.nps_monthly))
    if report.servqual is not None:
        parts += [
            "<h2>SERVQUAL</h2>",
            f"<p>Weighted gap <b>{s['servqual']['weighted_gap']:+.2f}</b> "
            "(below 0: the service falls short of expectations).</p>",
            f"<img alt='SERVQUAL gaps' src='{images['servqual.png']}'>",
            html_table(report.servqual),
        ]
    parts += [
        "<h2>Definitions</h2><pre style='white-space:pre-wrap;font-size:.8rem'>",
        html.escape(kpis.__doc__ or ""),
        "</pre></body></html>",
    ]
    return "\n".join(parts)


#: The report's tables written only when the report has them, each as ``<name>.csv``.
_OPTIONAL_TABLES = ("forecast", "nps_monthly", "servqual", "channels")
#: Every file :func:`write_report` may write into its folder.
REPORT_FILES = (
    "report.html",
    "kpis.json",
    "monthly.csv",
    "segments.csv",
    *(f"{name}.csv" for name in _OPTIONAL_TABLES),
)


def write_report(
    report: KpiReport, directory: str | Path, title: str = "Customer KPIs"
) -> list[Path]:
    """Write ``report.html``, ``kpis.json`` and a CSV per table into ``directory``, atomically."""
    directory = Path(directory)
    paths = [
        write_text(render_html(report, title), directory / "report.html"),
        write_json(report.summary, directory / "kpis.json"),
        write_table(report.monthly, directory / "monthly.csv"),
        write_table(report.segments, directory / "segments.csv"),
    ]
    for name in _OPTIONAL_TABLES:
        table = getattr(report, name)
        if table is not None:
            paths.append(write_table(table, directory / f"{name}.csv"))
    return paths
