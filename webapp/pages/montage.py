"""Montage: thumbnails of screened scans, cross-filtered with a probability histogram and a
feature-map scatter. A box or lasso selection in either chart narrows the grid and is highlighted in
the other chart; clicking a thumbnail opens the viewer."""
from __future__ import annotations

from datetime import date
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from core.db import session_scope
from webapp.access import SCREENING_ROLES, current_viewer, parse_id
from webapp.figures.screening import feature_scatter, probability_histogram, selected_ids
from webapp.queries.montage import MontageFilter, batch_choices, montage_rows
from webapp.security import guard_layout, secure_callback

ROLES = SCREENING_ROLES
dash.register_page(__name__, path="/montage", name="Montage", title="Montage · TumorScreen", roles=ROLES, order=12)

PAGE_SIZE = 72  # six rows of twelve 96 px tiles at 1366 px: one screen, no scrolling inside the grid
GRAPH_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["autoScale2d", "toImage"]}


def filters(batch_id: int | None) -> dbc.Row:
    viewer = current_viewer()
    with session_scope() as db:
        choices = batch_choices(db, viewer) if viewer else []
    return dbc.Row(
        [
            dbc.Col([dbc.Label("Batch"), dcc.Dropdown(id="montage-batch", options=choices, value=batch_id,
                                                      placeholder="all batches", clearable=True)], md=3),
            dbc.Col([dbc.Label("Label"), dbc.Select(id="montage-label", value="any", options=[
                {"label": "any", "value": "any"}, {"label": "tumor", "value": "tumor"},
                {"label": "no tumor", "value": "no_tumor"}, {"label": "not reviewed", "value": "not_reviewed"}])],
                md=2),
            dbc.Col([dbc.Label("Colour by"), dbc.Select(id="montage-colour", value="predicted", options=[
                {"label": "predicted label", "value": "predicted"},
                {"label": "reviewed label", "value": "reviewed"}])], md=2),
            dbc.Col([dbc.Label("Uploaded"), dcc.DatePickerRange(id="montage-dates", clearable=True,
                                                                display_format="YYYY-MM-DD")], md=3),
            dbc.Col([dbc.Checklist(id="montage-review", options=[{"label": "needs review only", "value": "y"}],
                                   value=[], switch=True),
                     dbc.Checklist(id="montage-heatmaps", options=[{"label": "heatmaps on thumbnails",
                                                                     "value": "y"}], value=[], switch=True)],
                    md=2, className="pt-2"),
        ],
        className="g-2 mb-2",
    )


@guard_layout(ROLES)
def layout(batch: str | None = None, **_: Any) -> dbc.Container:
    return dbc.Container(
        [
            html.H2("Montage"),
            filters(parse_id(batch)),
            dbc.Row([
                dbc.Col(dcc.Graph(id="montage-hist", config=GRAPH_CONFIG), lg=6),
                dbc.Col(dcc.Graph(id="montage-scatter", config=GRAPH_CONFIG), lg=6),
            ], className="g-2"),
            dbc.Row([
                dbc.Col(html.Div(id="montage-count", className="text-muted"), md="auto"),
                dbc.Col(dbc.Button("Clear selection", id="montage-clear", size="sm", color="secondary",
                                   outline=True), md="auto"),
                dbc.Col(dbc.Pagination(id="montage-pages", max_value=1, active_page=1, fully_expanded=False,
                                       first_last=True, previous_next=True, size="sm", className="mb-0"),
                        className="ms-auto", md="auto"),
            ], className="align-items-center my-2"),
            dcc.Loading(html.Div(id="montage-grid", className="ts-montage"), delay_show=400),
            dcc.Store(id="montage-selection"),
        ],
        className="ts-page",
        fluid=True,
    )


def tile(row: dict[str, Any], heatmaps: bool) -> html.A:
    image = "thumbnail-heatmap.png" if heatmaps else "thumbnail.png"
    return html.A(
        [html.Img(src=f"/media/scans/{row['id']}/{image}", width=96, height=96, alt=row["file"]),
         html.Div(f"{row['p']:.2f}", className=f"ts-tile-p ts-{row['shown']}")],
        href=f"/scans/{row['id']}", className="ts-tile", title=f"{row['file']} · batch {row['batch']}",
        **{"data-p": f"{row['p']:.4f}", "data-label": row["shown"], "data-scan": str(row["id"])},
    )


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


@secure_callback(
    ROLES,
    Output("montage-hist", "figure"),
    Output("montage-scatter", "figure"),
    Output("montage-grid", "children"),
    Output("montage-count", "children"),
    Output("montage-pages", "max_value"),
    Output("montage-pages", "active_page"),
    Output("montage-selection", "data"),
    Input("montage-batch", "value"),
    Input("montage-label", "value"),
    Input("montage-colour", "value"),
    Input("montage-dates", "start_date"),
    Input("montage-dates", "end_date"),
    Input("montage-review", "value"),
    Input("montage-heatmaps", "value"),
    Input("montage-hist", "selectedData"),
    Input("montage-scatter", "selectedData"),
    Input("montage-clear", "n_clicks"),
    Input("montage-pages", "active_page"),
    # Histogram bars report only indices into their trace, so the drawn figure maps them to scans;
    # scatter points carry their scan id themselves.
    State("montage-hist", "figure"),
    State("montage-selection", "data"),
)
def update(batch: Any, label: str | None, colour: str | None, start: str | None, end: str | None,
           review: list[str] | None, heatmaps: list[str] | None, hist_selection: dict | None,
           scatter_selection: dict | None, _clear: int | None, page: int | None, hist_figure: dict | None,
           selection: list[int] | None) -> tuple:
    viewer = current_viewer()
    trigger = dash.ctx.triggered_id
    flt = MontageFilter(batch_id=parse_id(batch), label=label or "any", needs_review=bool(review),
                        date_from=_date(start), date_to=_date(end), colour_by=colour or "predicted")
    with session_scope() as db:
        rows = montage_rows(db, viewer, flt) if viewer else []

    hist_out: Any = no_update
    scatter_out: Any = no_update
    if trigger == "montage-hist":
        selection = selected_ids(hist_selection, hist_figure)
        scatter_out = feature_scatter(rows, selection)
    elif trigger == "montage-scatter":
        selection = selected_ids(scatter_selection, None)
        hist_out = probability_histogram(rows, selection)
    elif trigger not in ("montage-pages", "montage-heatmaps"):
        # New filters (or the first load, or "clear"): a selection made on other data no longer applies.
        selection = None
        hist_out, scatter_out = probability_histogram(rows), feature_scatter(rows)

    chosen = set(selection) if selection is not None else None
    shown = [r for r in rows if chosen is None or r["id"] in chosen]
    shown.sort(key=lambda r: (-r["p"], r["id"]))
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    active = page if trigger in ("montage-pages", "montage-heatmaps") and page else 1
    active = min(active, pages)
    first = (active - 1) * PAGE_SIZE
    visible = shown[first:first + PAGE_SIZE]
    if not rows:
        grid: Any = dbc.Alert("No screened scans match these filters.", color="info", id="montage-empty")
        count = "0 scans"
    elif not shown:
        grid = dbc.Alert("Nothing in this selection.", color="info", id="montage-empty")
        count = f"0 selected of {len(rows):,} scans"
    else:
        grid = [tile(r, bool(heatmaps)) for r in visible]
        scope = f"{len(shown):,} selected of {len(rows):,}" if chosen is not None else f"{len(rows):,}"
        count = f"{scope} scans · showing {first + 1:,}-{first + len(visible):,}"
    return hist_out, scatter_out, grid, count, pages, active, selection
