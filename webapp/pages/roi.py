"""Managers: the ROI calculator, and beside it the throughput measured in the database."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from core.db import session_scope
from webapp.figures import roi as figures
from webapp.queries.throughput import Throughput, measured_throughput
from webapp.roi import FORMULA_TEXT, RoiInputError, RoiInputs, compute_roi, money
from webapp.security import guard_layout, secure_callback

ROLES = ("manager", "admin")
dash.register_page(__name__, path="/roi", name="ROI", title="ROI · TumorScreen",
                   roles=ROLES, order=40)

DEFAULTS = RoiInputs()
# id suffix, label, min, max, step, default: every input of the calculator is a slider with a number box.
SLIDERS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("scans", "Scans per month", 0, 50000, 100, DEFAULTS.scans_per_month),
    ("min-manual", "Minutes per manual read", 0, 60, 0.5, DEFAULTS.minutes_manual),
    ("min-assisted", "Minutes per assisted read", 0, 30, 0.5, DEFAULTS.minutes_assisted),
    ("cost-manual", "Cost per manual read ($)", 0, 200, 0.5, DEFAULTS.cost_manual),
    ("cost-automated", "Cost per automated read ($)", 0, 50, 0.25, DEFAULTS.cost_automated),
    ("hourly", "Staff hourly cost ($)", 0, 300, 5, DEFAULTS.staff_hourly_cost),
    ("review", "Share flagged for human review (%)", 0, 100, 1, DEFAULTS.review_share * 100),
)


def slider(suffix: str, label: str, low: float, high: float, step: float, value: float) -> html.Div:
    return html.Div(
        [
            dbc.Label(label, html_for=f"roi-{suffix}"),
            dcc.Slider(id=f"roi-{suffix}", min=low, max=high, step=step, value=value, marks=None,
                       allow_direct_input=True, updatemode="drag",
                       tooltip={"placement": "bottom", "always_visible": False}),
        ],
        className="mb-2",
    )


def stat(label: str, element_id: str) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div("–", className="value", id=element_id),
                                          html.Div(label, className="label")]), className="ts-stat"), md=4)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    today = datetime.now(timezone.utc).date()
    calculator = dbc.Card(dbc.CardBody([
        html.H4("ROI calculator"),
        *[slider(*spec) for spec in SLIDERS],
        dbc.ButtonGroup([
            dbc.Button("Use measured scan volume", id="roi-use-measured", color="secondary", size="sm"),
            dbc.Button("Use measured review share", id="roi-use-measured-review", color="secondary",
                       size="sm"),
        ], className="mt-2"),
    ]))
    results = html.Div([
        dbc.Alert(id="roi-error", color="danger", is_open=False),
        dbc.Row([
            stat("saved per 1,000 scans", "roi-savings-1000"),
            stat("saved per month", "roi-savings-month"),
            stat("ROI", "roi-percent"),
        ], className="g-2 mb-2"),
        dbc.Row([
            stat("staff hours saved per month", "roi-hours"),
            stat("value of staff time freed per month", "roi-staff-value"),
            stat("reading cost per month with TumorScreen", "roi-cost-with"),
        ], className="g-2 mb-2"),
        dbc.Row([
            dbc.Col(dcc.Graph(id="roi-costs-chart", config={"displaylogo": False}), md=6),
            dbc.Col(dcc.Graph(id="roi-share-chart", config={"displaylogo": False}), md=6),
        ]),
        dbc.Card(dbc.CardBody([html.H6("How it is computed"), html.P(FORMULA_TEXT, id="roi-formula",
                                                                         className="mb-0 small")]),
                 className="mb-3"),
    ])
    throughput = html.Div([
        html.H4("Measured throughput"),
        dbc.Row([
            dbc.Col(dcc.DatePickerRange(id="tp-range", start_date=today - timedelta(days=29), end_date=today,
                                        display_format="YYYY-MM-DD"), md="auto"),
            dbc.Col(html.Div(id="tp-error", className="text-danger"), md=True),
        ], className="mb-2 align-items-center"),
        dbc.Row([
            stat("scans screened in range", "tp-scans"),
            stat("scans per day (mean)", "tp-per-day"),
            stat("share needing review", "tp-review"),
        ], className="g-2 mb-2"),
        dbc.Row([
            stat("turnaround p50 / p95 (upload → result)", "tp-turnaround"),
            stat("queue wait p50 / p95", "tp-wait"),
            stat("monthly volume at this rate", "tp-month"),
        ], className="g-2 mb-2"),
        dbc.Row([
            dbc.Col(dcc.Graph(id="tp-day-chart", config={"displaylogo": False}), md=6),
            dbc.Col(dcc.Graph(id="tp-week-chart", config={"displaylogo": False}), md=6),
        ]),
        dbc.Row([
            dbc.Col(html.Div(id="tp-members"), md=6),
            dbc.Col(dcc.Graph(id="tp-member-chart", config={"displaylogo": False}), md=6),
        ]),
        dcc.Store(id="tp-measured"),
    ])
    return dbc.Container([
        html.H2("ROI and throughput"),
        dbc.Row([dbc.Col(calculator, lg=4), dbc.Col(results, lg=8)], className="mb-4"),
        throughput,
    ], className="ts-page", fluid=True)


@secure_callback(
    ROLES,
    Output("roi-savings-1000", "children"),
    Output("roi-savings-month", "children"),
    Output("roi-percent", "children"),
    Output("roi-hours", "children"),
    Output("roi-staff-value", "children"),
    Output("roi-cost-with", "children"),
    Output("roi-costs-chart", "figure"),
    Output("roi-share-chart", "figure"),
    Output("roi-error", "children"),
    Output("roi-error", "is_open"),
    *[Input(f"roi-{spec[0]}", "value") for spec in SLIDERS],
)
def update_roi(scans: float | None, min_manual: float | None, min_assisted: float | None,
               cost_manual: float | None, cost_automated: float | None, hourly: float | None,
               review_percent: float | None) -> tuple:
    inputs = RoiInputs(scans_per_month=scans, minutes_manual=min_manual,  # type: ignore[arg-type]
                       minutes_assisted=min_assisted, cost_manual=cost_manual,  # type: ignore[arg-type]
                       cost_automated=cost_automated, staff_hourly_cost=hourly,  # type: ignore[arg-type]
                       review_share=None if review_percent is None else review_percent / 100)  # type: ignore[arg-type]
    try:
        result = compute_roi(inputs)
    except RoiInputError as exc:
        return (*([no_update] * 8), str(exc), True)
    roi = "n/a (no automated spend)" if result.roi_percent is None else f"{result.roi_percent:,.1f}%"
    return (money(result.savings_per_1000), money(result.savings_per_month), roi,
            f"{result.hours_saved_per_month:,.1f} h", money(result.staff_time_value_per_month),
            money(result.cost_with_per_month), figures.monthly_costs(result),
            figures.savings_by_review_share(inputs), "", False)


def member_table(stats: Throughput) -> dbc.Table | html.P:
    if not stats.members:
        return html.P("No scans screened in this range.", className="text-muted")
    header = html.Thead(html.Tr([html.Th(h) for h in
                                 ("member", "scans uploaded", "flagged for review", "reviews given",
                                  "turnaround p50")]))
    rows = [html.Tr([html.Td(m.username), html.Td(m.scans), html.Td(m.flagged), html.Td(m.reviews),
                     html.Td(duration(m.turnaround_p50_s))]) for m in stats.members]
    return dbc.Table([header, html.Tbody(rows)], size="sm", striped=True, id="tp-member-table")


@secure_callback(
    ROLES,
    Output("tp-scans", "children"),
    Output("tp-per-day", "children"),
    Output("tp-review", "children"),
    Output("tp-turnaround", "children"),
    Output("tp-wait", "children"),
    Output("tp-month", "children"),
    Output("tp-day-chart", "figure"),
    Output("tp-week-chart", "figure"),
    Output("tp-members", "children"),
    Output("tp-member-chart", "figure"),
    Output("tp-measured", "data"),
    Output("tp-error", "children"),
    Input("tp-range", "start_date"),
    Input("tp-range", "end_date"),
)
def update_throughput(start: str | None, end: str | None) -> tuple:
    if not start or not end:
        return (*([no_update] * 11), "Choose a start and an end date.")
    start_day, end_day = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    if end_day < start_day:
        return (*([no_update] * 11), "The end date is before the start date.")
    with session_scope() as db:
        stats = measured_throughput(db, start_day, end_day)
    share = "n/a" if stats.review_share is None else f"{stats.review_share:.1%}"
    names = [m.username for m in stats.members]
    return (
        f"{stats.scans:,}",
        f"{stats.mean_per_day:,.1f}",
        share,
        f"{duration(stats.turnaround_p50_s)} / {duration(stats.turnaround_p95_s)}",
        f"{duration(stats.queue_wait_p50_s)} / {duration(stats.queue_wait_p95_s)}",
        f"{stats.scans_per_month_estimate:,.0f}",
        figures.scans_per_day(stats),
        figures.scans_per_week(stats),
        member_table(stats),
        figures.per_member(names, [m.scans for m in stats.members], [m.reviews for m in stats.members]),
        {"scans_per_month": stats.scans_per_month_estimate, "review_share": stats.review_share},
        "",
    )


@secure_callback(
    ROLES,
    Output("roi-scans", "value"),
    Input("roi-use-measured", "n_clicks"),
    State("tp-measured", "data"),
    prevent_initial_call=True,
)
def use_measured_volume(_clicks: int | None, measured: dict | None) -> Any:
    if not measured:
        return no_update
    # The slider moves in steps of 100 scans; the measured figure is rounded to the nearest step.
    return round(measured["scans_per_month"] / 100) * 100


@secure_callback(
    ROLES,
    Output("roi-review", "value"),
    Input("roi-use-measured-review", "n_clicks"),
    State("tp-measured", "data"),
    prevent_initial_call=True,
)
def use_measured_review(_clicks: int | None, measured: dict | None) -> Any:
    if not measured or measured.get("review_share") is None:
        return no_update
    return round(measured["review_share"] * 100)
