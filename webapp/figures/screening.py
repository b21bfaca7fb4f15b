"""Figures of the screener's pages: each takes plain data and returns a Plotly figure.

Colours are shared so a tumor is the same red in the histogram, the scatter and the gauge.
"""
from __future__ import annotations

from typing import Any, Iterable

import plotly.graph_objects as go

COLOURS = {"tumor": "#d62728", "no_tumor": "#1f77b4", "not_reviewed": "#9e9e9e"}
NAMES = {"tumor": "tumor", "no_tumor": "no tumor", "not_reviewed": "not reviewed"}
HIGHLIGHT = "#212529"
BIN_SIZE = 0.05
# Fixed trace order, so the same label keeps its colour and legend place whatever the data holds.
ORDER = ("no_tumor", "tumor", "not_reviewed")


def _base_layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=48, r=12, t=28, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=1.12, x=0), dragmode="select")
    return fig


def _in_bins(probability: float) -> float:
    """A probability of exactly 1 would open a bin past the axis, where no box can select it."""
    return min(probability, 1.0 - 1e-6)


def probability_gauge(probability: float, threshold: float, review_band: float) -> go.Figure:
    """The probability on a 0-1 gauge; the review band around the threshold shaded, the threshold a line."""
    low, high = max(0.0, threshold - review_band), min(1.0, threshold + review_band)
    colour = COLOURS["tumor"] if probability >= threshold else COLOURS["no_tumor"]
    fig = go.Figure(go.Indicator(
        mode="gauge+number",
        value=probability,
        number={"valueformat": ".3f"},
        gauge={
            "axis": {"range": [0, 1], "tickvals": [0, low, threshold, high, 1],
                     "ticktext": ["0", f"{low:.2f}", f"{threshold:.2f}", f"{high:.2f}", "1"]},
            "bar": {"color": colour, "thickness": 0.3},
            "steps": [{"range": [0, low], "color": "#e8f0fb"},
                      {"range": [low, high], "color": "#ffe8a3"},
                      {"range": [high, 1], "color": "#fbe3e3"}],
            "threshold": {"line": {"color": "#212529", "width": 4}, "thickness": 0.9, "value": threshold},
        },
        domain={"x": [0, 1], "y": [0, 1]},
    ))
    fig.update_layout(height=210, margin=dict(l=24, r=24, t=16, b=8), template="plotly_white")
    return fig


def probability_histogram(rows: list[dict[str, Any]], highlight: Iterable[int] | None = None) -> go.Figure:
    """Probabilities stacked by shown label; each trace carries its scan ids as `customdata`, so a
    selection's point numbers map back to scans. Highlighted scans get an outlined overlay trace."""
    fig = go.Figure()
    bins = dict(start=0.0, end=1.0, size=BIN_SIZE)
    chosen = set(highlight) if highlight is not None else None
    for label in ORDER:
        members = [r for r in rows if r["shown"] == label]
        if not members:
            continue
        fig.add_trace(go.Histogram(
            x=[_in_bins(r["p"]) for r in members], customdata=[r["id"] for r in members], name=NAMES[label],
            marker_color=COLOURS[label], xbins=bins, opacity=0.35 if chosen is not None else 0.85,
            hovertemplate="p %{x}<br>%{y} scans<extra>" + NAMES[label] + "</extra>"))
    if chosen is not None:
        members = [r for r in rows if r["id"] in chosen]
        fig.add_trace(go.Histogram(
            x=[_in_bins(r["p"]) for r in members], customdata=[r["id"] for r in members], name="selected",
            marker=dict(color="rgba(0,0,0,0)", line=dict(color=HIGHLIGHT, width=2)), xbins=bins,
            hovertemplate="p %{x}<br>%{y} selected<extra></extra>"))
    fig.update_layout(barmode="overlay" if chosen is not None else "stack", bargap=0.05)
    fig.update_xaxes(title_text="tumor probability", range=[0, 1])
    fig.update_yaxes(title_text="scans")
    return _base_layout(fig, 300)


def feature_scatter(rows: list[dict[str, Any]], highlight: Iterable[int] | None = None) -> go.Figure:
    """Each scan at its 2-D feature-map position, coloured by shown label; `customdata` is the scan id."""
    fig = go.Figure()
    chosen = set(highlight) if highlight is not None else None
    for label in ORDER:
        members = [r for r in rows if r["shown"] == label]
        if not members:
            continue
        selected = [i for i, r in enumerate(members) if r["id"] in chosen] if chosen is not None else None
        fig.add_trace(go.Scattergl(
            x=[r["x"] for r in members], y=[r["y"] for r in members], customdata=[r["id"] for r in members],
            text=[f"{r['file']} · p {r['p']:.3f}" for r in members], name=NAMES[label], mode="markers",
            marker=dict(color=COLOURS[label], size=6, opacity=0.8), selectedpoints=selected,
            selected=dict(marker=dict(opacity=1.0, size=8)), unselected=dict(marker=dict(opacity=0.12)),
            hovertemplate="%{text}<extra></extra>"))
    fig.update_xaxes(title_text="feature map 1", zeroline=False)
    fig.update_yaxes(title_text="feature map 2", zeroline=False)
    return _base_layout(fig, 300)


def selected_ids(selection: dict[str, Any] | None, figure: dict[str, Any] | None) -> list[int] | None:
    """Scan ids inside a box or lasso selection of either chart; None when nothing is selected.

    Scatter points carry their scan id as `customdata`; histogram bars report the indices of the
    values they hold (`pointNumbers`), which index the trace's `customdata`.
    """
    if not selection or "points" not in selection:
        return None
    traces = (figure or {}).get("data") or []
    ids: set[int] = set()
    for point in selection["points"]:
        if "pointNumbers" in point:
            curve = point.get("curveNumber", 0)
            custom = traces[curve].get("customdata") if curve < len(traces) else None
            if custom is None:
                continue
            ids.update(int(custom[n]) for n in point["pointNumbers"] if n < len(custom))
        elif point.get("customdata") is not None:
            value = point["customdata"]
            ids.add(int(value[0] if isinstance(value, list) else value))
    return sorted(ids)


def batch_outcomes(summary: dict[str, Any], tumor: int, no_tumor: int) -> go.Figure:
    """One horizontal bar per outcome of a batch's files, for the report."""
    names = ["tumor", "no tumor", "needs review", "rejected", "duplicate", "failed"]
    values = [tumor, no_tumor, summary["flagged"], summary["rejected"], summary["duplicates"], summary["failed"]]
    colours = [COLOURS["tumor"], COLOURS["no_tumor"], "#f0ad4e", "#6c757d", "#adb5bd", "#343a40"]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours, text=values,
                           textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=220, margin=dict(l=90, r=12, t=8, b=24), template="plotly_white")
    return fig
