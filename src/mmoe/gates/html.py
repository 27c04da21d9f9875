"""``report.html``: one self-contained page (figures inline as base64 PNG, no script, no network).

Example:
    >>> page = render_html({"title": "t", "meta": {}, "report": {"gates": [], "experts": [],
    ...     "warnings": [], "thresholds": {"meaning": "m"}, "relatedness": {"gates": [],
    ...     "tasks": [], "gate_divergence": [], "label_correlation": None}, "segments": {},
    ...     "rows": 0}}, {})
    >>> page.startswith("<!DOCTYPE html>") and "http" not in page.split("<body>")[1]
    True
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1.5rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.note, .caption { color: #555; font-size: 0.92rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #d8d8d8; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f4f4f6; }
td.name, th.name { text-align: left; }
table.meta td { text-align: left; border: none; padding: 0.1rem 0.8rem 0.1rem 0; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.6rem 1rem; }
.ok { background: #eef8ee; border-left: 4px solid #4a9a4a; padding: 0.6rem 1rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.scroll { overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _shade(value: float, top: float) -> str:
    """A blue background whose strength follows ``value / top`` (the heatmap's scale)."""
    level = 0.0 if top <= 0 else max(0.0, min(1.0, value / top))
    text = "#fff" if level > 0.6 else "#000"
    return f"background: rgba(33, 102, 172, {level:.2f}); color: {text}"


def _figure(name: str, figures: dict[str, bytes], caption: str) -> str:
    if name not in figures:
        return ""
    data = base64.b64encode(figures[name]).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(name)}">'
        f'<figcaption class="caption">{caption}</figcaption></figure>'
    )


def _summary_table(report: dict[str, Any]) -> str:
    head = (
        "<tr><th class=name>gate</th><th>experts it can select</th><th class=name>main expert"
        "</th><th>largest mean weight</th><th>smallest mean weight</th><th>entropy (nats)</th>"
        "<th>normalised entropy</th></tr>"
    )
    body = "".join(
        f"<tr><td class=name>{_e(g['label'])}</td><td>{len(g['experts'])}</td>"
        f"<td class=name>{_e(g['main_expert'])}</td><td>{_number(g['max_utilisation'])}</td>"
        f"<td>{_number(g['min_utilisation'])}</td><td>{_number(g['entropy'])}</td>"
        f"<td>{_number(g['normalized_entropy'])}</td></tr>"
        for g in report["gates"]
    )
    return f"<table>{head}{body}</table>"


def _weights_table(report: dict[str, Any]) -> str:
    """Mean gate weight, one row per expert and one column per gate, shaded like the heatmap."""
    gates = report["gates"]
    top = max((max(g["mean_weight"].values()) for g in gates), default=1.0)
    head = "<tr><th class=name>expert</th>" + "".join(f"<th>{_e(g['label'])}</th>" for g in gates)
    body = "".join(
        f"<tr><td class=name>{_e(e)}</td>"
        + "".join(
            f'<td style="{_shade(g["mean_weight"][e], top)}">{g["mean_weight"][e]:.3f}</td>'
            for g in gates
        )
        + "</tr>"
        for e in report["experts"]
    )
    return f'<div class="scroll"><table>{head}</tr>{body}</table></div>'


def _relatedness_table(report: dict[str, Any]) -> str:
    rel = report["relatedness"]
    gates, divergence = rel["gates"], rel["gate_divergence"]
    corr = rel["label_correlation"]
    tasks = rel["tasks"]
    rows = []
    for i in range(len(gates)):
        for j in range(i + 1, len(gates)):
            value = divergence[i][j]
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue  # gates of different levels are not compared
            label = "–"
            a, b = report["gates"][i]["name"], report["gates"][j]["name"]
            if corr is not None and a in tasks and b in tasks:
                label = _number(corr[tasks.index(a)][tasks.index(b)])
            rows.append(
                f"<tr><td class=name>{_e(gates[i])}</td><td class=name>{_e(gates[j])}</td>"
                f"<td>{_number(value)}</td><td>{label}</td></tr>"
            )
    if not rows:
        return "<p class=note>One gate per level: there is no pair of gates to compare.</p>"
    head = (
        "<tr><th class=name>gate</th><th class=name>gate</th><th>gate divergence</th>"
        "<th>label correlation</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(context: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The report page. ``context``: ``title``, ``meta`` (label → text) and ``report`` (the
    data of ``gates.json``); ``figures``: PNG bytes by file name."""
    report = context["report"]
    meta = "".join(
        f"<tr><td><b>{_e(k)}</b></td><td>{_e(v)}</td></tr>" for k, v in context["meta"].items()
    )
    thresholds = _e(report["thresholds"]["meaning"])
    if report["warnings"]:
        items = "".join(f"<li>{_e(w)}</li>" for w in report["warnings"])
        health = f'<div class="warn"><b>Warnings</b><ul>{items}</ul>{thresholds}.</div>'
    else:
        health = (
            f'<div class="ok"><b>No dead expert and no polarised gate.</b> Thresholds: '
            f"{thresholds}.</div>"
        )
    segments = ""
    for column, seg in report["segments"].items():
        caption = (
            f"Mean gate weight of every expert (columns) on the rows with each value of "
            f"<b>{_e(column)}</b> (rows; the number of rows in brackets), one panel per gate. "
            "Columns whose colour changes down a panel are experts that serve some segments "
            "more than others."
        )
        segments += f"<h2>By {_e(column)}</h2>" + _figure(seg["figure"], figures, caption)
    weights = _figure(
        "gate_weights.png",
        figures,
        "Top: the mean weight each gate (row) gives each expert (column), over all "
        f"{report['rows']:,} rows: the experts a task relies on. Below: the share of rows on "
        "which the expert carries the gate's largest weight. Two tasks that share experts "
        "have similar rows; a column that is pale for every gate is an expert no task uses.",
    )
    utilisation = _figure(
        "utilisation.png",
        figures,
        "Mean gate weight per expert and gate. The dashed red line is the dead-expert "
        "threshold, the dotted grey line the even share (1 / experts).",
    )
    entropy = _figure(
        "entropy.png",
        figures,
        "Distribution over rows of each gate's normalised entropy: near 0 the gate sends a "
        "row to one expert, near 1 it spreads the row evenly. A gate can be decisive on "
        "every row and still use many experts (different experts for different rows).",
    )
    relatedness = _figure(
        "relatedness.png",
        figures,
        "Left: gate divergence, the Jensen–Shannon divergence between two gates' "
        "distributions over the experts on the same row, averaged over rows and divided by "
        "ln 2 (0: the two tasks mix the experts identically; 1: they never share an expert). "
        "Right: the Pearson correlation of the tasks' labels on the rows labelled for both "
        "(shown when the data has the labels). Related tasks tend to have low divergence.",
    )
    body = "\n".join(
        [
            f"<h1>{_e(context['title'])}</h1>",
            f'<table class="meta">{meta}</table>',
            "<h2>Health</h2>",
            health,
            _summary_table(report),
            "<h2>How each gate divides the work among the experts</h2>",
            weights,
            _weights_table(report),
            utilisation,
            "<h2>How decisive the gates are</h2>",
            entropy,
            "<h2>Task relatedness from the gates</h2>",
            relatedness,
            _relatedness_table(report),
            segments,
            '<p class="note">Files beside this page: gates.json (every number above) and the '
            "PNG figures. Written by <code>mmoe gates</code>.</p>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(context['title'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


__all__ = ["render_html"]
