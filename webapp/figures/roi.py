"""Figures of the ROI and throughput page."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import plotly.graph_objects as go

from webapp.queries.throughput import Throughput
from webapp.roi import RoiInputs, RoiResult, compute_roi

LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=40, b=40), height=320)


def monthly_costs(result: RoiResult) -> go.Figure:
    """Monthly cost without and with TumorScreen, the latter split into automated and review reads."""
    fig = go.Figure()
    fig.add_bar(name="manual reads", x=["without TumorScreen", "with TumorScreen"],
                y=[result.cost_without_per_month, result.review_spend_per_month])
    fig.add_bar(name="automated reads", x=["without TumorScreen", "with TumorScreen"],
                y=[0, result.automated_spend_per_month])
    fig.update_layout(**LAYOUT, barmode="stack", title="Reading cost per month", yaxis_tickprefix="$")
    return fig


def savings_by_review_share(inputs: RoiInputs) -> go.Figure:
    """Savings per 1,000 scans as the review share goes from 0% to 100%, the current share marked."""
    shares = [i / 100 for i in range(0, 101, 2)]
    savings = [compute_roi(replace(inputs, review_share=s)).savings_per_1000 for s in shares]
    fig = go.Figure(go.Scatter(x=[s * 100 for s in shares], y=savings, mode="lines", name="savings"))
    current = compute_roi(inputs).savings_per_1000
    fig.add_scatter(x=[inputs.review_share * 100], y=[current], mode="markers", marker=dict(size=12),
                    name="current inputs")
    fig.add_hline(y=0, line=dict(color="#aaa", dash="dot"))
    fig.update_layout(**LAYOUT, title="Savings per 1,000 scans vs share flagged for review",
                      xaxis_title="share flagged for review (%)", yaxis_tickprefix="$", showlegend=False)
    return fig


def scans_per_day(stats: Throughput) -> go.Figure:
    fig = go.Figure(go.Bar(x=[d.isoformat() for d, _ in stats.per_day], y=[n for _, n in stats.per_day],
                           name="per day"))
    fig.update_layout(**LAYOUT, title="Scans screened per day", yaxis_title="scans")
    return fig


def scans_per_week(stats: Throughput) -> go.Figure:
    fig = go.Figure(go.Bar(x=[f"week of {d.isoformat()}" for d, _ in stats.per_week],
                           y=[n for _, n in stats.per_week]))
    fig.update_layout(**LAYOUT, title="Scans screened per week", yaxis_title="scans")
    return fig


def per_member(names: Sequence[str], scans: Sequence[int], reviews: Sequence[int]) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(name="scans uploaded", x=list(names), y=list(scans))
    fig.add_bar(name="reviews given", x=list(names), y=list(reviews))
    fig.update_layout(**LAYOUT, barmode="group", title="Per team member")
    return fig
