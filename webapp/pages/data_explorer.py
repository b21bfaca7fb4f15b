"""Data explorer: a registered dataset's classes, balance, duplicates, splits and what its images look like."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from core.db import session_scope
from core.models import Dataset
from webapp.figures import data as figures
from webapp.queries.datasets import dataset_options, image_stats, prepare_report
from webapp.security import guard_layout, secure_callback

ROLES = ("manager", "admin")
dash.register_page(__name__, path="/data", name="Data", title="Data explorer · TumorScreen",
                   roles=ROLES, order=50)


@guard_layout(ROLES)
def layout(dataset: str | None = None, **_: Any) -> dbc.Container:
    with session_scope() as db:
        options = dataset_options(db)
    chosen = int(dataset) if dataset and dataset.isdigit() else (options[0]["value"] if options else None)
    return dbc.Container([
        html.H2("Data explorer"),
        dbc.Row(dbc.Col(dcc.Dropdown(id="data-dataset", options=options, value=chosen,
                                     placeholder="a registered dataset", clearable=False), md=5),
                className="mb-3"),
        dcc.Loading(html.Div(id="data-report")),
        dcc.Loading(html.Div(id="data-images")),
    ], className="ts-page", fluid=True)


def _graph(figure: Any, element_id: str) -> dcc.Graph:
    return dcc.Graph(figure=figure, id=element_id, config={"displaylogo": False})


def report_section(report: dict[str, Any]) -> list[Any]:
    balance, splits = report["class_balance"], report["splits"]
    near, exact = report["near_duplicate_groups"], report["exact_duplicates"]
    cross = report.get("cross_label_duplicates", {})
    split_rows = [html.Tr([html.Td(name), html.Td(c.get("no_tumor", 0)), html.Td(c.get("tumor", 0)),
                           html.Td(sum(c.values())), html.Td(splits["groups_per_split"].get(name, ""))])
                  for name, c in splits["per_label"].items()]
    split_table = dbc.Table([html.Thead(html.Tr([html.Th(h) for h in ("split", "no tumor", "tumor", "total",
                                                                       "groups")])),
                             html.Tbody(split_rows)], size="sm", bordered=True, id="data-split-table")
    duplicates = html.Ul([
        html.Li(f"Exact duplicates dropped: {exact['dropped']}"),
        html.Li(f"Images excluded because they were filed under both labels: {cross.get('excluded_images', 0)}"),
        html.Li(f"{near['images']} images in {near['groups']} similarity groups; "
                f"{near['groups_with_several_images']} groups hold several images "
                f"({near['images_in_such_groups']} images); largest: "
                f"{', '.join(str(s) for s in near['largest_sizes']) or 'none'}"),
        html.Li(f"Groups crossing splits: {splits['groups_crossing_splits']} (each group lies in one split, "
                "so near-copies never leak from training into test)"),
    ], id="data-duplicates")
    examples = [html.Li(f"group {e['group']} ({e['size']} images): {', '.join(e['members'])}")
                for e in near.get("examples", [])]
    mapping = report.get("class_mapping", {}).get("folders", {})
    return [
        dbc.Row([
            dbc.Col(_graph(figures.class_balance(balance["before"], balance["train_before_oversampling"],
                                                 balance["train_after_oversampling"]), "data-balance-chart"), lg=6),
            dbc.Col(_graph(figures.splits(splits["per_label"]), "data-split-chart"), lg=6),
        ]),
        html.P(balance.get("note", ""), className="text-muted small"),
        dbc.Row([
            dbc.Col([html.H5("Splits"), split_table,
                     html.H5("Class mapping"),
                     html.Ul([html.Li(f"{folder} → {label}") for folder, label in mapping.items()])], lg=5),
            dbc.Col([html.H5("Duplicates"), duplicates,
                     html.Details([html.Summary("Largest groups"), html.Ul(examples)]) if examples else None],
                    lg=7),
        ]),
        _graph(figures.group_sizes(near.get("size_histogram", {})), "data-groups-chart")
        if near.get("size_histogram") else html.Div(),
    ]


@secure_callback(
    ROLES,
    Output("data-report", "children"),
    Input("data-dataset", "value"),
)
def show_report(dataset_id: int | None) -> Any:
    if dataset_id is None:
        return dbc.Alert("No dataset is registered yet. Admins register one on the Datasets page.", color="info")
    with session_scope() as db:
        dataset = db.get(Dataset, int(dataset_id))
        if dataset is None:
            return dbc.Alert(f"No dataset {dataset_id}.", color="warning")
        status, error, report = dataset.status, dataset.error, prepare_report(dataset.report)
    if status == "failed":
        return dbc.Alert(f"Preparation failed: {error}", color="danger")
    if report is None:
        return dbc.Alert(f"This dataset is {status}; its report appears when preparation is done.", color="info")
    return report_section(report)


@secure_callback(
    ROLES,
    Output("data-images", "children"),
    Input("data-dataset", "value"),
)
def show_images(dataset_id: int | None) -> Any:
    if dataset_id is None:
        return None
    stats = image_stats(int(dataset_id))
    if stats is None:
        return html.P("No prepared images are stored for this dataset yet.", className="text-muted")
    names = {"no_tumor": "no tumor", "tumor": "tumor"}
    parts: list[Any] = [
        html.H4("What the classes look like", className="mt-4"),
        _graph(figures.image_grid({f"mean, {names[k]}": v for k, v in stats.means.items()},
                                  "Mean image per class"), "data-mean-chart"),
        _graph(figures.image_grid({f"variability (std), {names[k]}": v for k, v in stats.stds.items()},
                                  "Variability per class", colorscale="Viridis"), "data-std-chart"),
    ]
    if stats.difference is not None:
        parts.append(_graph(figures.image_grid({"tumor mean − no-tumor mean": stats.difference},
                                               "Difference of the class means (red: brighter in tumor scans)",
                                               colorscale="RdBu_r", zmid=0.0), "data-diff-chart"))
    for label, images in stats.samples.items():
        parts.append(_graph(figures.montage(images, f"Samples: {names[label]} ({len(images)})"),
                            f"data-samples-{label}"))
    return parts
