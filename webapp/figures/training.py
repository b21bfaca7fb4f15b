"""Figures of a training run, drawn live from its TrainingEpoch rows."""
from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=300)
PALETTE = qualitative.Plotly


def metric_line(key: str, keys: Sequence[str]) -> dict[str, str]:
    """The line of one metric among `keys`: a metric and its val_ twin share a colour, training solid and
    validation dashed, so that the eye pairs loss with val_loss rather than with the next curve."""
    metrics = list(dict.fromkeys(k.removeprefix("val_") for k in keys))
    colour = PALETTE[metrics.index(key.removeprefix("val_")) % len(PALETTE)]
    return dict(color=colour, dash="dash" if key.startswith("val_") else "solid")


def epoch_curves(epochs: Sequence[tuple[int, dict[str, Any]]], keys: Sequence[str], title: str,
                 total_epochs: int | None = None) -> go.Figure:
    """One line per metric key (training solid, val_ dashed) over the epochs seen so far."""
    fig = go.Figure()
    xs = [e for e, _ in epochs]
    for key in keys:
        values = [m.get(key) for _, m in epochs]
        if any(v is not None for v in values):
            fig.add_scatter(x=xs, y=values, mode="lines+markers", name=key, line=metric_line(key, keys))
    xaxis: dict[str, Any] = dict(title="epoch", dtick=1)
    if total_epochs:
        xaxis["range"] = [0.5, total_epochs + 0.5]
    fig.update_layout(**LAYOUT, title=title, xaxis=xaxis)
    return fig
