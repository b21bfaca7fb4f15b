"""Home: what the system is doing right now, and where each role goes next."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html
from sqlalchemy import func, select

from core.db import session_scope
from core.models import Batch, ModelVersion, Prediction, Scan
from webapp.layout import visible_pages
from webapp.security import ALL_ROLES, current_role, guard_layout

ROLES = ALL_ROLES
dash.register_page(__name__, path="/", name="Home", title="TumorScreen", roles=ROLES, order=0, nav=False)


def stat(label: str, value: Any, element_id: str) -> dbc.Col:
    return dbc.Col(
        dbc.Card(dbc.CardBody([html.Div(str(value), className="value", id=element_id),
                               html.Div(label, className="label")]), className="ts-stat"),
        md=3,
    )


def system_status() -> dict[str, Any]:
    with session_scope() as db:
        active = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
        in_queue = db.scalar(
            select(func.count()).select_from(Batch).where(Batch.status.in_(("queued", "running")))
        )
        screened = db.scalar(select(func.count()).select_from(Prediction))
        review = db.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.needs_review.is_(True))
        )
        scans = db.scalar(select(func.count()).select_from(Scan))
        return {
            "model": f"{active.version} (threshold {active.threshold:.3f})" if active else "none yet",
            "in_queue": in_queue or 0,
            "screened": screened or 0,
            "review": review or 0,
            "scans": scans or 0,
        }


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    status = system_status()
    pages = [p for p in visible_pages(current_role()) if p["relative_path"] != "/"]
    links = [dbc.ListGroupItem(p["name"], href=p["relative_path"], action=True) for p in pages]
    return dbc.Container(
        [
            html.H2("Overview"),
            dbc.Row(
                [
                    stat("active model", status["model"], "home-model"),
                    stat("batches in queue", status["in_queue"], "home-queue"),
                    stat("scans screened", status["screened"], "home-screened"),
                    stat("flagged for review", status["review"], "home-review"),
                ],
                className="g-3 mb-4",
            ),
            html.H5("Go to"),
            dbc.ListGroup(links) if links else html.P("No pages are open to your role yet.",
                                                       className="text-muted"),
        ],
        className="ts-page",
        fluid=True,
    )
