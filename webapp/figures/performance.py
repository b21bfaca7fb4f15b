"""Figures of the model performance page."""
from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from webapp.figures.training import metric_line
from webapp.queries.performance import METRICS, ThresholdResult

LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=320)


def metrics_comparison(rows: Sequence[tuple[str, dict[str, Any]]]) -> go.Figure:
    """Grouped bars: one group per metric, one bar per (version label, metrics)."""
    fig = go.Figure()
    names = [label for _key, label in METRICS]
    for label, metrics in rows:
        values = [metrics.get(key) for key, _ in METRICS]
        # Values are in the table beside the chart; on hover here (labels on 8 × N bars overlap).
        fig.add_bar(name=label, x=names, y=values, hovertemplate="%{x}: %{y:.4f}")
    fig.update_layout(**LAYOUT, title="Metrics on the test split", barmode="group",
                      yaxis=dict(range=[0, 1.1]))
    return fig


def confusion_matrix(result: ThresholdResult, title: str) -> go.Figure:
    """2×2 heatmap, rows = truth, columns = prediction, counts written in the cells."""
    z = [[result.tp, result.fn], [result.fp, result.tn]]
    text = [[f"TP {result.tp}", f"FN {result.fn}"], [f"FP {result.fp}", f"TN {result.tn}"]]
    fig = go.Figure(go.Heatmap(z=z, x=["predicted tumor", "predicted no tumor"],
                               y=["tumor", "no tumor"], text=text, texttemplate="%{text}",
                               colorscale="Blues", showscale=False))
    fig.update_layout(**{**LAYOUT, "height": 280}, title=title, yaxis=dict(autorange="reversed"))
    return fig


def roc_curve(curves: Sequence[tuple[str, dict | None]], marks: Sequence[tuple[str, float, float]] = ()) -> go.Figure:
    """ROC curves per version; `marks` are (label, fpr, tpr) operating points."""
    fig = go.Figure()
    for label, roc in curves:
        if roc:
            fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=label)
    for label, fpr, tpr in marks:
        fig.add_scatter(x=[fpr], y=[tpr], mode="markers", marker=dict(size=11, symbol="x"),
                        name=f"{label} operating point")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), name="chance")
    fig.update_layout(**LAYOUT, title="ROC", xaxis_title="false positive rate", yaxis_title="recall")
    return fig


def pr_curve(curves: Sequence[tuple[str, dict | None]]) -> go.Figure:
    fig = go.Figure()
    for label, pr in curves:
        if pr:
            fig.add_scatter(x=pr["recall"], y=pr["precision"], mode="lines", name=label)
    fig.update_layout(**LAYOUT, title="Precision-recall", xaxis_title="recall", yaxis_title="precision")
    return fig


def calibration_curve(curves: Sequence[tuple[str, dict | None]]) -> go.Figure:
    fig = go.Figure()
    for label, cal in curves:
        if cal:
            fig.add_scatter(x=cal["mean_probability"], y=cal["observed_rate"], mode="lines+markers", name=label)
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), name="perfect")
    fig.update_layout(**LAYOUT, title="Calibration", xaxis_title="mean predicted probability",
                      yaxis_title="observed tumor rate")
    return fig


def threshold_scores(y_true: Sequence[int], probability: Sequence[float], threshold: float,
                     operating: float) -> go.Figure:
    """Histogram of test scores per true class, the chosen threshold and the operating one marked."""
    fig = go.Figure()
    fig.add_histogram(x=[p for p, y in zip(probability, y_true) if y == 1], name="tumor",
                      xbins=dict(start=0, end=1, size=0.025), opacity=0.65)
    fig.add_histogram(x=[p for p, y in zip(probability, y_true) if y == 0], name="no tumor",
                      xbins=dict(start=0, end=1, size=0.025), opacity=0.65)
    fig.add_vline(x=operating, line=dict(color="#198754", dash="dash"),
                  annotation_text=f"operating {operating:.3f}", annotation_position="top left")
    fig.add_vline(x=threshold, line=dict(color="#dc3545"), annotation_text=f"explored {threshold:.3f}")
    fig.update_layout(**LAYOUT, barmode="overlay", title="Test-set scores",
                      xaxis_title="calibrated probability", yaxis_title="scans")
    return fig


def training_curves(history: Sequence[dict[str, Any]], title: str = "Training curves") -> go.Figure:
    """Loss and accuracy per epoch, training and validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.12)
    epochs = [h["epoch"] for h in history]
    panels = ((1, ("loss", "val_loss")), (2, ("accuracy", "val_accuracy")))
    every_key = [key for _, keys in panels for key in keys]
    for col, keys in panels:
        for key in keys:
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                fig.add_scatter(x=epochs, y=values, mode="lines+markers", name=key, row=1, col=col,
                                line=metric_line(key, every_key))
        fig.update_xaxes(title_text="epoch", dtick=1, row=1, col=col)
    fig.update_layout(**LAYOUT, title=title)
    return fig


def latency_histogram(values: Sequence[float], label: str) -> go.Figure:
    fig = go.Figure(go.Histogram(x=list(values), nbinsx=40, name=label))
    fig.update_layout(**LAYOUT, title=f"Latency per image ({len(values)} predictions)",
                      xaxis_title="ms", yaxis_title="predictions")
    return fig


def agreement_matrix(matrix: dict[str, int]) -> go.Figure:
    z = [[matrix.get("tumor/tumor", 0), matrix.get("tumor/no_tumor", 0)],
         [matrix.get("no_tumor/tumor", 0), matrix.get("no_tumor/no_tumor", 0)]]
    fig = go.Figure(go.Heatmap(z=z, x=["model: tumor", "model: no tumor"],
                               y=["reviewer: tumor", "reviewer: no tumor"], text=z, texttemplate="%{text}",
                               colorscale="Greens", showscale=False))
    fig.update_layout(**{**LAYOUT, "height": 260}, title="Reviewers vs model",
                      yaxis=dict(autorange="reversed"))
    return fig
