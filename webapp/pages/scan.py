"""Scan viewer: the normalised slice with its heatmap, the probability against threshold and review
band, where the scan came from, and the review buttons."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from core.db import session_scope
from webapp.access import REVIEW_ROLES, SCREENING_ROLES, current_viewer, parse_id
from webapp.auth import client_address
from webapp.figures.screening import probability_gauge
from webapp.queries.scans import ReviewRefused, record_review, review_history, scan_detail
from webapp.security import guard_layout, secure_callback

ROLES = SCREENING_ROLES
dash.register_page(__name__, path_template="/scans/<scan_id>", name="Scan", title="Scan · TumorScreen",
                   roles=ROLES, order=51, nav=False)

NOT_FOUND = "This scan does not exist, or it is not in one of your batches."
VIEW_PX = 448  # twice the stored 224 px: full detail without leaving a laptop screen
LABEL_NAMES = {"tumor": "tumor", "no_tumor": "no tumor"}


def facts(detail: dict[str, Any]) -> html.Table:
    rows = [("File", detail["filename"]), ("SHA-256", detail["sha256"]),
            ("Format", " · ".join(x for x in (detail["format"], detail["modality"]) if x)),
            ("Original size", f"{detail['width']} × {detail['height']} px, {detail['size_bytes']:,} bytes"
             if detail["width"] else f"{detail['size_bytes']:,} bytes"),
            ("Status", detail["status"])]
    if detail["model_version"]:
        rows += [("Model", f"{detail['model_version']} (threshold {detail['threshold']:.3f}, "
                           f"review band ±{detail['review_band']:.2f})"),
                 ("Screened", detail["predicted_at"])]
    if detail["error"]:
        rows.append(("Error", detail["error"]))
    return html.Table([html.Tbody([html.Tr([html.Th(k, className="pe-3"), html.Td(v, className="ts-break")])
                                   for k, v in rows])], className="table table-sm mb-2", id="scan-facts")


def dicom_table(fields: list[tuple[str, str]]) -> Any:
    if not fields:
        return html.Div()
    return html.Details([html.Summary("DICOM fields kept after de-identification"),
                         html.Table([html.Tbody([html.Tr([html.Th(k, className="pe-3"), html.Td(v)])
                                                 for k, v in fields])], className="table table-sm small")],
                        id="scan-dicom", open=True)


def history_list(reviews: list[dict[str, Any]]) -> Any:
    if not reviews:
        return html.P("Not reviewed yet.", className="text-muted", id="scan-no-reviews")
    items = []
    for review in reversed(reviews):
        what = f"confirmed {LABEL_NAMES.get(review['label'], review['label'])}" if review["label"] else "note"
        items.append(dbc.ListGroupItem([html.Strong(f"{review['by']} "), html.Span(what),
                                        html.Span(f" · {review['at']}", className="text-muted small"),
                                        html.Div(review["note"], className="small") if review["note"] else None]))
    return dbc.ListGroup(items, className="ts-scroll")


def label_badge(detail: dict[str, Any]) -> Any:
    if detail["label"] is None:
        return dbc.Badge("no prediction", color="secondary", className="fs-6")
    badges = [dbc.Badge(LABEL_NAMES[detail["label"]], color="danger" if detail["label"] == "tumor" else "primary",
                        className="fs-6 me-2", id="scan-label")]
    if detail["needs_review"]:
        badges.append(dbc.Badge("needs review", color="warning", text_color="dark", className="fs-6"))
    return html.Div(badges, className="mb-2")


def viewer_panel(detail: dict[str, Any]) -> Any:
    sid = detail["scan_id"]
    if not detail["has_image"]:
        return dbc.Alert("No image was stored for this file." + (f" {detail['error']}" if detail["error"] else ""),
                         color="secondary")
    layers = [html.Img(src=f"/media/scans/{sid}/image.png", className="ts-layer", id="scan-image",
                       alt=detail["filename"])]
    controls: list[Any] = []
    if detail["has_heatmap"]:
        layers.append(html.Img(src=f"/media/scans/{sid}/heatmap.png", className="ts-layer ts-overlay",
                               id="scan-overlay", alt="heatmap", style={"opacity": 0.5}))
        controls = [
            dbc.Switch(id="scan-heatmap-on", label="Show heatmap", value=True, className="mb-1"),
            html.Div([dbc.Label("Heatmap opacity", html_for="scan-opacity", className="mb-0 small"),
                      dcc.Slider(id="scan-opacity", min=0, max=1, step=0.05, value=0.5,
                                 marks={0: "0", 0.5: "0.5", 1: "1"})], style={"maxWidth": f"{VIEW_PX}px"}),
        ]
    return html.Div([html.Div(layers, className="ts-stack", style={"width": f"{VIEW_PX}px",
                                                                   "height": f"{VIEW_PX}px"}), *controls])


def review_card(detail: dict[str, Any], may_review: bool) -> dbc.Card:
    body: list[Any] = []
    if may_review:
        # Always rendered (disabled without a prediction): the review callback needs all of its inputs.
        unlabelled = detail["probability"] is None
        body += [
            html.Div([
                dbc.Button("Confirm tumor", id="scan-confirm-tumor", color="danger", className="me-2 mb-2",
                           disabled=unlabelled),
                dbc.Button("Confirm no tumor", id="scan-confirm-none", color="primary", className="me-2 mb-2",
                           disabled=unlabelled),
            ]),
            dbc.Textarea(id="scan-note", placeholder="Note (optional with a label, required alone)",
                         maxLength=2000, rows=2, className="mb-2"),
            dbc.Button("Save note", id="scan-save-note", color="secondary", outline=True, className="mb-2"),
            dbc.Alert(id="scan-review-message", is_open=False, className="py-2"),
        ]
    body.append(html.Div(history_list(detail["reviews"]), id="scan-history"))
    return dbc.Card([dbc.CardHeader("Review"), dbc.CardBody(body)], className="mb-3")


def neighbour_links(detail: dict[str, Any]) -> html.Div:
    def link(text: str, target: int | None, element_id: str) -> Any:
        if target is None:
            return dbc.Button(text, disabled=True, color="light", className="me-2", id=element_id)
        return dcc.Link(text, href=f"/scans/{target}", className="btn btn-outline-secondary me-2", id=element_id)

    return html.Div([
        link("← Previous", detail["previous_id"], "scan-prev"),
        link("Next →", detail["next_id"], "scan-next"),
        dcc.Link(f"Batch {detail['batch_id']}", href=f"/batches/{detail['batch_id']}",
                 className="btn btn-link", id="scan-batch"),
        html.Span(f"scan {detail['position']} of {detail['batch_size']}", className="text-muted ms-2"),
    ], className="mb-2 no-print")


@guard_layout(ROLES)
def layout(scan_id: str | None = None, **_: Any) -> dbc.Container:
    sid = parse_id(scan_id)
    viewer = current_viewer()
    detail = None
    if sid is not None and viewer is not None:
        with session_scope() as db:
            detail = scan_detail(db, viewer, sid)
    if detail is None:
        return dbc.Container(dbc.Alert(NOT_FOUND, color="warning", id="scan-missing"), className="ts-page")
    probability = (dcc.Graph(id="scan-gauge", config={"displayModeBar": False},
                             figure=probability_gauge(detail["probability"], detail["threshold"],
                                                      detail["review_band"]))
                   if detail["probability"] is not None else
                   dbc.Alert("This file has no prediction.", color="secondary"))
    return dbc.Container(
        [
            neighbour_links(detail),
            html.H3(detail["filename"], className="ts-break", id="scan-title"),
            dbc.Row([
                dbc.Col(viewer_panel(detail), lg=6, className="mb-3"),
                dbc.Col([label_badge(detail), probability, facts(detail), dicom_table(detail["dicom"])], lg=6),
            ]),
            review_card(detail, viewer.may_review),
            dcc.Store(id="scan-id", data=sid),
        ],
        className="ts-page",
        fluid=True,
    )


@secure_callback(
    ROLES,
    Output("scan-overlay", "style"),
    Input("scan-heatmap-on", "value"),
    Input("scan-opacity", "value"),
)
def overlay_style(shown: bool | None, opacity: float | None) -> dict[str, Any]:
    if not shown:
        return {"opacity": 0, "visibility": "hidden"}
    value = min(1.0, max(0.0, float(opacity if opacity is not None else 0.5)))
    return {"opacity": value}


@secure_callback(
    REVIEW_ROLES,
    Output("scan-review-message", "children"),
    Output("scan-review-message", "color"),
    Output("scan-review-message", "is_open"),
    Output("scan-history", "children"),
    Output("scan-note", "value"),
    Input("scan-confirm-tumor", "n_clicks"),
    Input("scan-confirm-none", "n_clicks"),
    Input("scan-save-note", "n_clicks"),
    State("scan-note", "value"),
    State("scan-id", "data"),
    prevent_initial_call=True,
)
def review(_t: int | None, _n: int | None, _s: int | None, note: str | None, scan_id: int | None) -> tuple:
    label = {"scan-confirm-tumor": "tumor", "scan-confirm-none": "no_tumor"}.get(dash.ctx.triggered_id)
    viewer = current_viewer()
    sid = parse_id(scan_id)
    try:
        with session_scope() as db:
            if viewer is None or sid is None:
                raise ReviewRefused("This scan does not exist or is not yours to review.")
            record_review(db, viewer, sid, label, note, address=client_address())
            history = review_history(db, sid)
    except ReviewRefused as refusal:
        return str(refusal), "danger", True, no_update, no_update
    what = f"Confirmed {LABEL_NAMES[label]}" if label else "Note saved"
    return f"{what}.", "success", True, history_list(history), ""
