"""Figures of the data explorer."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LAYOUT = dict(template="plotly_white", margin=dict(l=40, r=20, t=50, b=30))
LABEL_NAMES = {"no_tumor": "no tumor", "tumor": "tumor"}


def class_balance(before: Mapping[str, int], train_before: Mapping[str, int],
                  train_after: Mapping[str, int]) -> go.Figure:
    """Images per class: whole dataset, training split, and the training split after oversampling."""
    fig = go.Figure()
    groups = ["all images", "train split", "train split, balanced"]
    for label in ("no_tumor", "tumor"):
        fig.add_bar(name=LABEL_NAMES[label], x=groups,
                    y=[before.get(label, 0), train_before.get(label, 0), train_after.get(label, 0)],
                    text=[before.get(label, 0), train_before.get(label, 0), train_after.get(label, 0)],
                    textposition="outside")
    fig.update_layout(**LAYOUT, height=320, barmode="group", title="Class distribution before and after balancing")
    return fig


def splits(per_label: Mapping[str, Mapping[str, int]]) -> go.Figure:
    fig = go.Figure()
    names = list(per_label)
    for label in ("no_tumor", "tumor"):
        values = [per_label[s].get(label, 0) for s in names]
        fig.add_bar(name=LABEL_NAMES[label], x=names, y=values, text=values, textposition="inside")
    fig.update_layout(**LAYOUT, height=300, barmode="stack", title="Split sizes")
    return fig


def image_grid(images: Mapping[str, np.ndarray], title: str, colorscale: str = "gray",
               zmid: float | None = None) -> go.Figure:
    """One panel per named image (mean or variability per class, or a difference), same colour scale."""
    names = list(images)
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=names, horizontal_spacing=0.04)
    for i, name in enumerate(names, start=1):
        fig.add_trace(go.Heatmap(z=np.flipud(images[name]), colorscale=colorscale, zmid=zmid,
                                 showscale=i == len(names)), row=1, col=i)
        fig.update_xaxes(visible=False, row=1, col=i)
        fig.update_yaxes(visible=False, scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    fig.update_layout(**LAYOUT, height=320, title=title)
    return fig


def montage(images: np.ndarray, title: str, columns: int = 8) -> go.Figure:
    """Sample images of one class tiled into one picture."""
    if images.size == 0:
        tiled = np.zeros((8, 8), np.float32)
    else:
        n, side = images.shape[0], images.shape[1]
        rows = -(-n // columns)
        tiled = np.ones((rows * side, columns * side), np.float32)
        for i, image in enumerate(images):
            r, c = divmod(i, columns)
            tiled[r * side:(r + 1) * side, c * side:(c + 1) * side] = image
    fig = go.Figure(go.Heatmap(z=np.flipud(tiled), colorscale="gray", showscale=False))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(**LAYOUT, height=260, title=title)
    return fig


def group_sizes(histogram: Mapping[str, int]) -> go.Figure:
    sizes: Sequence[str] = sorted(histogram, key=int)
    fig = go.Figure(go.Bar(x=[f"{s} images" for s in sizes], y=[histogram[s] for s in sizes]))
    fig.update_layout(**LAYOUT, height=280, title="Near-duplicate groups by size", yaxis_title="groups")
    return fig
