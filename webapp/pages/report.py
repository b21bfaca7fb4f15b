"""Printable batch report: the summary, the outcome counts, and every flagged scan with its heatmap.

Made for the browser's print dialog: the navbar and buttons carry `no-print`, and tiles avoid
breaking across pages (see the print rules in the assets).
"""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.db import session_scope
from webapp.access import SCREENING_ROLES, current_viewer, parse_id
from webapp.figures.screening import batch_outcomes
from webapp.queries.batches import batch_summary, flagged_rows, scan_rows
from webapp.security import guard_layout

ROLES = SCREENING_ROLES
dash.register_page(__name__, path_template="/reports/<batch_id>", name="Batch report",
                   title="Batch report · TumorScreen", roles=ROLES, order=52, nav=False)

NOT_FOUND = "This batch does not exist, or it is not one of yours."
# A report is read on paper: beyond this many flagged scans the table and the CSV carry the rest.
MAX_FLAGGED_TILES = 120


def report_tile(row: dict[str, Any]) -> dbc.Col:
    sid = row["scan_id"]
    reasons = [x for x in ("tumor" if row["label"] == "tumor" else "", "needs review" if row["needs_review"] else "")
               if x]
    return dbc.Col(html.Div([
        html.Div([html.Img(src=f"/media/scans/{sid}/image.png", className="ts-layer", alt=row["filename"]),
                  html.Img(src=f"/media/scans/{sid}/heatmap.png", className="ts-layer", alt="heatmap",
                           style={"opacity": 0.45})],
                 className="ts-stack", style={"width": "200px", "height": "200px"}),
        html.Div(html.Strong(row["filename"]), className="small ts-break mt-1"),
        html.Div(f"p = {row['probability']:.3f} · {', '.join(reasons)}"
                 + (f" · reviewed: {row['reviewed_label']}" if row["reviewed_label"] else ""), className="small"),
    ], className="ts-report-tile"), xs=6, md=4, lg=3, className="mb-3")


@guard_layout(ROLES)
def layout(batch_id: str | None = None, **_: Any) -> dbc.Container:
    bid = parse_id(batch_id)
    viewer = current_viewer()
    summary = rows = None
    if bid is not None and viewer is not None:
        with session_scope() as db:
            summary = batch_summary(db, viewer, bid)
            rows = scan_rows(db, viewer, bid) if summary else None
    if summary is None or rows is None:
        return dbc.Container(dbc.Alert(NOT_FOUND, color="warning", id="report-missing"), className="ts-page")
    tumor = sum(1 for r in rows if r["label"] == "tumor")
    no_tumor = sum(1 for r in rows if r["label"] == "no_tumor")
    picked = flagged_rows(rows)
    model = sorted({r["model_version"] for r in rows if r["model_version"]})
    facts = [("Uploaded", f"{summary['created']} by {summary['uploaded_by']}"),
             ("Finished", summary["finished"] or f"not yet ({summary['status']})"),
             ("Files", f"{summary['total_files']} ({summary['accepted']} screened, {summary['rejected']} rejected, "
                       f"{summary['duplicates']} duplicates, {summary['failed']} failed)"),
             ("Model", ", ".join(model) or "none"),
             ("Result", f"{tumor} tumor, {no_tumor} no tumor, {summary['flagged']} need review")]
    tiles = ([report_tile(r) for r in picked[:MAX_FLAGGED_TILES]] if picked else
             [dbc.Col(html.P("No scan was predicted tumor or flagged for review.", id="report-none"))])
    more = (html.P(f"{len(picked) - MAX_FLAGGED_TILES} more flagged scans are in the CSV export.",
                   className="text-muted") if len(picked) > MAX_FLAGGED_TILES else None)
    return dbc.Container(
        [
            html.Div([dcc.Link("← Back to the batch", href=f"/batches/{bid}", className="btn btn-link"),
                      html.Span("Print this page with your browser (Ctrl+P); the navigation is left out.",
                                className="text-muted small")], className="no-print mb-2"),
            html.H2(f"TumorScreen report · batch {bid}"),
            html.Table(html.Tbody([html.Tr([html.Th(k, className="pe-3"), html.Td(v)]) for k, v in facts]),
                       className="table table-sm", id="report-summary"),
            dcc.Graph(figure=batch_outcomes(summary, tumor, no_tumor), config={"staticPlot": True},
                      id="report-outcomes"),
            html.H4(f"Flagged scans ({len(picked)})", className="mt-3"),
            html.P("Predicted tumor or within the review band around the threshold; heatmap overlaid.",
                   className="text-muted small"),
            dbc.Row(tiles, id="report-flagged"),
            more,
            html.P("Screening support only: every result is to be confirmed by a qualified reader.",
                   className="small text-muted mt-4"),
        ],
        className="ts-page ts-report",
        fluid=True,
    )
