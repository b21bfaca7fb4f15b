"""Model performance: versions side by side, curves, the threshold explorer, training, latency and how
the live model agrees with reviewers."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html, no_update
from sqlalchemy import select

from core.db import session_scope
from core.models import ModelVersion, TrainingEpoch
from webapp.figures import performance as figures
from webapp.queries.performance import (
    METRICS,
    agreement_with_reviewers,
    at_threshold,
    latencies,
    scores_arrays,
    version_curves,
    versions,
)
from webapp.security import guard_layout, secure_callback

ROLES = ("manager", "admin")
dash.register_page(__name__, path="/performance", name="Performance", title="Performance · TumorScreen",
                   roles=ROLES, order=30)


def version_label(version: ModelVersion) -> str:
    return f"{version.version} ({version.status})"


def version_options() -> tuple[list[dict[str, str]], list[str], str | None]:
    """Dropdown options, the versions shown by default (active + newest candidate), the active one."""
    with session_scope() as db:
        found = versions(db)
        options = [{"label": version_label(v), "value": v.version} for v in found]
        active = next((v.version for v in found if v.status == "active"), None)
        candidate = next((v.version for v in found if v.status == "candidate"), None)
    default = [v for v in (active, candidate) if v] or [o["value"] for o in options[:1]]
    return options, default, active or (default[0] if default else None)


def metric_text(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    options, default, explore = version_options()
    if not options:
        return dbc.Container([html.H2("Model performance"),
                              dbc.Alert("No model version is registered yet.", color="info")],
                             className="ts-page", fluid=True)
    graph = lambda element_id: dcc.Graph(id=element_id, config={"displaylogo": False})  # noqa: E731
    return dbc.Container([
        html.H2("Model performance"),
        dbc.Row([
            dbc.Col(dbc.Label("Versions compared"), md="auto"),
            dbc.Col(dcc.Dropdown(id="perf-versions", options=options, value=default, multi=True), md=6),
        ], className="mb-2 align-items-center"),
        html.Div(id="perf-table"),
        dbc.Row([dbc.Col(graph("perf-metrics-chart"), lg=6), dbc.Col(html.Div(id="perf-confusions"), lg=6)]),
        dbc.Row([dbc.Col(graph("perf-roc"), lg=4), dbc.Col(graph("perf-pr"), lg=4),
                 dbc.Col(graph("perf-calibration"), lg=4)]),
        html.Hr(),
        html.H4("Threshold explorer"),
        html.P("Move the threshold: recall, specificity and the confusion matrix are recomputed from the "
               "version's stored test-set scores (a scan is called tumor at probability ≥ threshold). "
               "The dashed line is the operating threshold the version screens with.",
               className="text-muted"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="perf-te-version", options=options, value=explore, clearable=False), md=3),
            dbc.Col(dcc.Slider(id="perf-threshold", min=0, max=1, step=0.01, value=0.5, marks=None,
                               allow_direct_input=True, updatemode="drag",
                               tooltip={"placement": "bottom"}), md=9),
        ], className="mb-2"),
        dbc.Row([
            dbc.Col([
                html.Div(id="perf-te-summary"),
                dbc.Table([
                    html.Thead(html.Tr([html.Th(""), html.Th("predicted tumor"), html.Th("predicted no tumor")])),
                    html.Tbody([
                        html.Tr([html.Th("tumor"), html.Td(id="perf-te-tp"), html.Td(id="perf-te-fn")]),
                        html.Tr([html.Th("no tumor"), html.Td(id="perf-te-fp"), html.Td(id="perf-te-tn")]),
                    ]),
                ], bordered=True, size="sm", id="perf-te-matrix"),
            ], lg=4),
            dbc.Col(graph("perf-te-confusion"), lg=3),
            dbc.Col(graph("perf-te-scores"), lg=5),
        ]),
        html.Hr(),
        dbc.Row([dbc.Col(graph("perf-training"), lg=6), dbc.Col(graph("perf-latency"), lg=6)]),
        html.Hr(),
        html.H4("Since it went live: agreement with reviewers"),
        dbc.Row([dbc.Col(html.Div(id="perf-agreement"), lg=5), dbc.Col(graph("perf-agreement-chart"), lg=7)]),
    ], className="ts-page", fluid=True)


def _load(names: list[str]) -> list[ModelVersion]:
    with session_scope() as db:
        found = {v.version: v for v in db.scalars(select(ModelVersion).where(ModelVersion.version.in_(names)))}
    return [found[n] for n in names if n in found]


def metrics_table(chosen: list[ModelVersion]) -> dbc.Table:
    header = html.Thead(html.Tr([html.Th("metric"), *[html.Th(version_label(v)) for v in chosen]]))
    body = [html.Tr([html.Td(label), *[html.Td(metric_text((v.metrics or {}).get(key))) for v in chosen]])
            for key, label in METRICS]
    body.append(html.Tr([html.Td("Operating threshold"), *[html.Td(f"{v.threshold:.4f}") for v in chosen]]))
    body.append(html.Tr([html.Td("Test scans"), *[html.Td(str((v.metrics or {}).get("n", "n/a"))) for v in chosen]]))
    return dbc.Table([header, html.Tbody(body)], size="sm", striped=True, id="perf-metrics-table")


@secure_callback(
    ROLES,
    Output("perf-table", "children"),
    Output("perf-metrics-chart", "figure"),
    Output("perf-confusions", "children"),
    Output("perf-roc", "figure"),
    Output("perf-pr", "figure"),
    Output("perf-calibration", "figure"),
    Input("perf-versions", "value"),
)
def compare_versions(names: list[str] | None) -> tuple:
    chosen = _load(list(names or []))
    if not chosen:
        return (dbc.Alert("Choose at least one version.", color="info"), *([no_update] * 5))
    curves = [(v.version, version_curves(v)) for v in chosen]
    confusions, marks = [], []
    for v in chosen:
        y_true, probability = scores_arrays(v.test_scores)
        if y_true.size:
            result = at_threshold(y_true, probability, v.threshold)
            confusions.append(dcc.Graph(figure=figures.confusion_matrix(
                result, f"{v.version} at its threshold {v.threshold:.3f}"), config={"displaylogo": False}))
            negatives, positives = result.tn + result.fp, result.tp + result.fn
            marks.append((v.version, result.fp / negatives if negatives else 0.0,
                          result.tp / positives if positives else 0.0))
    return (
        metrics_table(chosen),
        figures.metrics_comparison([(v.version, v.metrics or {}) for v in chosen]),
        confusions or html.P("No stored test scores.", className="text-muted"),
        figures.roc_curve([(n, c.get("roc")) for n, c in curves], marks),
        figures.pr_curve([(n, c.get("pr")) for n, c in curves]),
        figures.calibration_curve([(n, c.get("calibration")) for n, c in curves]),
    )


@secure_callback(
    ROLES,
    Output("perf-threshold", "value"),
    Output("perf-training", "figure"),
    Output("perf-latency", "figure"),
    Output("perf-agreement", "children"),
    Output("perf-agreement-chart", "figure"),
    Input("perf-te-version", "value"),
)
def choose_explored_version(name: str | None) -> tuple:
    chosen = _load([name] if name else [])
    if not chosen:
        return (no_update,) * 5
    version = chosen[0]
    with session_scope() as db:
        history = (version.curves or {}).get("history") or []
        if not history and version.training_run_id is not None:
            history = [{"epoch": e.epoch, **e.metrics} for e in db.scalars(
                select(TrainingEpoch).where(TrainingEpoch.run_id == version.training_run_id)
                .order_by(TrainingEpoch.epoch))]
        times = latencies(db, version.id)
        agreement = agreement_with_reviewers(db, version)
    if agreement.reviewed:
        summary = html.Div([
            html.Div(f"{agreement.rate:.1%}", className="value", id="perf-agreement-rate"),
            html.Div(f"of {agreement.reviewed} reviewed scans the reviewer's label matched {version.version}'s",
                     className="label"),
        ], className="ts-stat")
    else:
        summary = html.P(f"No reviewed scans screened by {version.version} since it went live.",
                         className="text-muted", id="perf-agreement-rate")
    return (
        round(version.threshold, 4),
        figures.training_curves(history, f"Training curves of {version.version}"),
        figures.latency_histogram(times, version.version),
        summary,
        figures.agreement_matrix(agreement.matrix),
    )


@secure_callback(
    ROLES,
    Output("perf-te-summary", "children"),
    Output("perf-te-tp", "children"),
    Output("perf-te-fn", "children"),
    Output("perf-te-fp", "children"),
    Output("perf-te-tn", "children"),
    Output("perf-te-confusion", "figure"),
    Output("perf-te-scores", "figure"),
    Input("perf-threshold", "value"),
    Input("perf-te-version", "value"),
)
def explore_threshold(threshold: float | None, name: str | None) -> tuple:
    chosen = _load([name] if name else [])
    if not chosen or threshold is None:
        return (no_update,) * 7
    version = chosen[0]
    y_true, probability = scores_arrays(version.test_scores)
    if not y_true.size:
        return (html.P(f"{version.version} has no stored test scores.", className="text-muted"),
                *([""] * 4), no_update, no_update)
    result = at_threshold(y_true, probability, float(threshold))
    summary = html.Ul([
        html.Li(["Threshold ", html.B(f"{result.threshold:.4f}", id="perf-te-threshold"),
                 f" (operating: {version.threshold:.4f})"]),
        html.Li(["Recall ", html.B(metric_text(result.recall), id="perf-te-recall")]),
        html.Li(["Specificity ", html.B(metric_text(result.specificity), id="perf-te-specificity")]),
        html.Li(["Precision ", html.B(metric_text(result.precision))]),
        html.Li(f"{y_true.size} test scans"),
    ], className="list-unstyled")
    return (summary, str(result.tp), str(result.fn), str(result.fp), str(result.tn),
            figures.confusion_matrix(result, f"{version.version} at {result.threshold:.3f}"),
            figures.threshold_scores(y_true.tolist(), probability.tolist(), result.threshold, version.threshold))
