"""Admin: start a training run with chosen settings, watch it live, cancel it."""
from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user

from core.db import session_scope
from webapp.figures.training import epoch_curves
from webapp.queries.training import FINAL_STATUSES, dataset_kind, dataset_options, run_options, run_progress
from webapp.security import guard_layout, secure_callback
from worker.training_runs import DEFAULT_SETTINGS, TrainingRequestError, request_cancel, start_training_run

ROLES = ("admin",)
dash.register_page(__name__, path="/admin/training", name="Training", title="Training · TumorScreen",
                   roles=ROLES, order=65)

# How sure the threshold must be to meet the recall target on new patients (ml.calibration.choose_threshold).
CONFIDENCE_OPTIONS = [
    {"label": "validation's own patients", "value": "off"},
    {"label": "80 % of resampled validation patients", "value": 0.8},
    {"label": "90 % of resampled validation patients", "value": 0.9},
    {"label": "95 % of resampled validation patients", "value": 0.95},
]
# The class activation map's grid (TrainSettings.top_down: steps of the top-down path), named by its side at 128 px.
HEATMAP_GRID_OPTIONS = [
    {"label": "16×16 where the dataset has tumor masks to teach it, else 8×8", "value": "auto"},
    {"label": "8×8 at 128 px: the last block alone", "value": 0},
    {"label": "16×16 at 128 px: one top-down step", "value": 1},
    {"label": "32×32 at 128 px: two top-down steps", "value": 2},
]
# Shown under a finished or running run, in this order.
SHOWN_SETTINGS = ("epochs", "image_size", "learning_rate", "batch_size", "recall_target", "recall_confidence",
                  "balance", "appearance_clusters", "augment", "intensity_augment", "top_down", "mask_weight",
                  "transplant_fraction")
# What a setting left as None means, before training has chosen (TrainSettings: top_down None resolves by masks).
UNSET_MEANS = {"top_down": "automatic", "recall_confidence": "off"}

STATUS_COLORS = {"queued": "secondary", "running": "primary", "succeeded": "success", "failed": "danger",
                 "cancelled": "warning"}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def field(label: str, control: Any, md: int = 2) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=getattr(control, "id", None)), control], md=md)


def settings_summary(requested: dict[str, Any], used: dict[str, Any]) -> str:
    """The run's settings as requested; one left automatic shows what training chose once its model exists."""
    parts = []
    for key in (k for k in SHOWN_SETTINGS if k in requested):
        value = requested[key]
        if value is None:
            value = UNSET_MEANS.get(key, "none") if used.get(key) is None else f"{used[key]} (automatic)"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def mask_use(epochs: list[tuple[int, dict[str, Any]]], settings: dict[str, Any]) -> str:
    """Whether the run learned from tumor masks, read from what its epochs logged (ml.train.epoch_entry)."""
    if any("mask_loss" in metrics for _, metrics in epochs):
        return (f"Trained with the dataset's tumor masks (weight {settings.get('mask_weight', '–')}): "
                "the loss chart shows the masks' loss beside the label's.")
    return "Trained on the labels alone: no tumor masks were used."


@guard_layout(ROLES)
def layout(**_: Any) -> dbc.Container:
    with session_scope() as db:
        datasets, runs = dataset_options(db), run_options(db)
    settings = dbc.Card(dbc.CardBody([
        html.H5("New training run"),
        dbc.Row([
            field("Dataset", dcc.Dropdown(id="train-dataset", options=datasets,
                                          value=datasets[0]["value"] if datasets else None,
                                          placeholder="a prepared dataset"), md=4),
            field("Epochs", dbc.Input(id="train-epochs", type="number", min=1, max=200, step=1,
                                      value=DEFAULT_SETTINGS.epochs)),
            field("Image size (px)", dbc.Input(id="train-image-size", type="number", min=32, max=512, step=16,
                                               value=DEFAULT_SETTINGS.image_size)),
            field("Learning rate", dbc.Input(id="train-lr", type="number", min=0, step="any",
                                             value=DEFAULT_SETTINGS.learning_rate)),
            field("Batch size", dbc.Input(id="train-batch", type="number", min=1, max=512, step=1,
                                          value=DEFAULT_SETTINGS.batch_size)),
        ], className="g-2"),
        dbc.Row([
            field("Recall target (%)", dbc.Input(id="train-recall-target", type="number", min=50, max=100, step=0.1,
                                                 value=round(DEFAULT_SETTINGS.recall_target * 100, 1))),
            field("…met on",
                  dcc.Dropdown(id="train-recall-confidence", options=CONFIDENCE_OPTIONS, clearable=False,
                               value=DEFAULT_SETTINGS.recall_confidence or "off"), md=3),
            dbc.Col(html.Small("The decision threshold is the highest at which validation's tumors reach the "
                               "recall target. A threshold that only just meets it on validation's own patients "
                               "misses it on new ones about half the time; asking it of a share of bootstrap "
                               "draws of those patients (similarity groups) leaves a margin, paid for in "
                               "specificity: on brain-mri, in three training runs, 95 % found 0–4 more of 601 "
                               "test tumors and cleared 77–92 % of the tumor-free scans, against 97 % without.",
                               className="text-muted"), md=7),
        ], className="g-2 mt-1 align-items-end"),
        dbc.Row([
            field("Tumor-mask weight", dbc.Input(id="train-mask-weight", type="number", min=0, step="any",
                                                 value=DEFAULT_SETTINGS.mask_weight)),
            dbc.Col(html.Small("Where the dataset has a tumor mask for each tumor scan (synthetic CT), the heatmap "
                               "is also trained to lie on the tumor, with this weight beside the label's loss; "
                               "0 trains on the labels alone. Datasets without masks always train on the labels.",
                               className="text-muted"), md=6),
            field("Heatmap grid", dcc.Dropdown(id="train-heatmap-grid", options=HEATMAP_GRID_OPTIONS, clearable=False,
                                               value="auto"), md=4),
        ], className="g-2 mt-1 align-items-end"),
        dbc.Row([
            dbc.Col(dbc.Switch(id="train-balance", label="Balance classes (oversample the minority)", value=True),
                    md="auto"),
            dbc.Col(dbc.Switch(id="train-augment", label="Augment (rotation, flips, shifts, zoom)",
                               value=True), md="auto"),
            dbc.Col(dbc.Switch(id="train-intensity", label="Also vary contrast and brightness (off for windowed CT)",
                               value=True), md="auto"),
            dbc.Col(dbc.Button("Start training", id="train-start", color="primary"), md="auto"),
        ], className="g-3 mt-2 align-items-center"),
        dbc.Alert(id="train-message", is_open=False, className="mt-3 mb-0"),
    ]), className="mb-3")
    live = dbc.Card(dbc.CardBody([
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="train-run", options=runs, value=runs[0]["value"] if runs else None,
                                 placeholder="a training run", clearable=False), md=4),
            dbc.Col(dbc.Button("Cancel this run", id="train-cancel", color="danger", outline=True), md="auto"),
        ], className="g-2 mb-2 align-items-center"),
        html.Div(id="train-status"),
        dbc.Row([dbc.Col(dcc.Graph(id="train-loss-chart", config={"displaylogo": False}), lg=6),
                 dbc.Col(dcc.Graph(id="train-metric-chart", config={"displaylogo": False}), lg=6)]),
        dcc.Interval(id="train-interval", interval=1000),
    ]))
    return dbc.Container([html.H2("Training"), settings, html.H4("Runs"), live], className="ts-page", fluid=True)


@secure_callback(
    ROLES,
    Output("train-message", "children"),
    Output("train-message", "color"),
    Output("train-message", "is_open"),
    Output("train-run", "options"),
    Output("train-run", "value"),
    Output("train-interval", "disabled", allow_duplicate=True),
    Input("train-start", "n_clicks"),
    State("train-dataset", "value"),
    State("train-epochs", "value"),
    State("train-image-size", "value"),
    State("train-lr", "value"),
    State("train-batch", "value"),
    State("train-balance", "value"),
    State("train-augment", "value"),
    State("train-intensity", "value"),
    State("train-heatmap-grid", "value"),
    State("train-recall-target", "value"),
    State("train-recall-confidence", "value"),
    State("train-mask-weight", "value"),
    prevent_initial_call=True,
)
def start_run(_clicks: int | None, dataset_id: int | None, epochs: int | None, image_size: int | None,
              learning_rate: float | None, batch_size: int | None, balance: bool | None,
              augment: bool | None, intensity: bool | None, top_down: int | str | None,
              recall_percent: float | None, confidence: float | str | None, mask_weight: float | None) -> tuple:
    def refuse(message: str) -> tuple:
        return f"Not started: {message}.", "danger", True, no_update, no_update, no_update

    if dataset_id is None:
        return refuse("choose a prepared dataset")
    # Keyed by the name the message gives each field.
    values = {"epochs": epochs, "image_size": image_size, "learning_rate": learning_rate, "batch_size": batch_size,
              "recall_target": recall_percent, "tumor-mask weight": mask_weight}
    missing = [name.replace("_", " ") for name, value in values.items() if value is None]
    if missing:
        return refuse(f"enter a valid {', '.join(missing)}")
    if image_size is not None and image_size < 32:
        return refuse("the image size must be at least 32 px")
    if learning_rate is not None and learning_rate <= 0:
        return refuse("the learning rate must be above 0")
    if recall_percent is not None and not 0 < recall_percent <= 100:
        return refuse("the recall target must be above 0 % and at most 100 %")
    if mask_weight is not None and mask_weight < 0:
        return refuse("the tumor-mask weight must be 0 or more")
    settings = {"epochs": int(epochs), "image_size": int(image_size),  # type: ignore[arg-type]
                "learning_rate": float(learning_rate), "batch_size": int(batch_size),  # type: ignore[arg-type]
                "balance": bool(balance), "augment": bool(augment), "intensity_augment": bool(intensity),
                "top_down": None if top_down in (None, "auto") else int(top_down),
                "recall_target": float(recall_percent) / 100.0,  # type: ignore[arg-type]
                "recall_confidence": None if confidence in (None, "off") else float(confidence),
                "mask_weight": float(mask_weight)}  # type: ignore[arg-type]
    try:
        with session_scope() as db:
            # The training-run module writes the audit entry (who, which dataset, which settings).
            run = start_training_run(db, int(dataset_id), settings, current_user.id)
            options = run_options(db)
    except TrainingRequestError as exc:
        return refuse(str(exc))
    return f"Run {run.id} queued.", "success", True, options, run.id, False


@secure_callback(
    ROLES,
    Output("train-intensity", "value"),
    Input("train-dataset", "value"),
)
def intensity_for_dataset(dataset_id: int | None) -> bool:
    """Synthetic CT is read through one fixed window, where a grey level is a density: vary only the
    geometry (ml.augment). Other datasets start with contrast and brightness varied; the admin decides."""
    if dataset_id is None:
        return True
    with session_scope() as db:
        return dataset_kind(db, int(dataset_id)) != "synthetic"


@secure_callback(
    ROLES,
    Output("train-message", "children", allow_duplicate=True),
    Output("train-message", "color", allow_duplicate=True),
    Output("train-message", "is_open", allow_duplicate=True),
    Input("train-cancel", "n_clicks"),
    State("train-run", "value"),
    prevent_initial_call=True,
)
def cancel_run(_clicks: int | None, run_id: int | None) -> tuple:
    if run_id is None:
        return "Not cancelled: choose a run first.", "danger", True
    try:
        with session_scope() as db:
            run = request_cancel(db, int(run_id), current_user.id)
            status = run.status
    except TrainingRequestError as exc:
        return f"Not cancelled: {exc}.", "danger", True
    if status == "cancelled":
        return f"Run {run_id} cancelled before it started.", "warning", True
    return f"Run {run_id} will stop at its next checkpoint.", "warning", True


@secure_callback(
    ROLES,
    Output("train-status", "children"),
    Output("train-loss-chart", "figure"),
    Output("train-metric-chart", "figure"),
    Output("train-interval", "disabled"),
    Input("train-interval", "n_intervals"),
    Input("train-run", "value"),
)
def show_progress(_n: int | None, run_id: int | None) -> tuple:
    if run_id is None:
        return html.P("No training run yet.", className="text-muted"), no_update, no_update, True
    with session_scope() as db:
        progress = run_progress(db, int(run_id))
    if progress is None:
        return html.P(f"No run {run_id}."), no_update, no_update, True
    done = len(progress.epochs)
    facts = [
        html.Span(progress.status, className=f"badge bg-{STATUS_COLORS.get(progress.status, 'secondary')} me-2",
                  id="train-run-status"),
        html.Span(f"dataset {progress.dataset} · "),
        html.Span(f"epoch {done} of {progress.total_epochs}", id="train-epochs-done"),
        html.Span(f" · elapsed {duration(progress.elapsed_s)}", id="train-elapsed"),
    ]
    if progress.status == "running":
        facts.append(html.Span(f" · about {duration(progress.remaining_s)} left" if progress.remaining_s is not None
                               else " · estimating time left after the first epoch", id="train-eta"))
    if progress.cancel_requested and progress.status not in FINAL_STATUSES:
        facts.append(html.Span(" · cancelling", className="text-warning"))
    lines = [html.Div(facts)]
    if progress.error:
        lines.append(html.Div(progress.error, className="text-danger", id="train-error"))
    if progress.candidate:
        lines.append(html.Div(["Candidate registered: ",
                               dcc.Link(progress.candidate, href="/admin/models", id="train-candidate"),
                               f" ({progress.candidate_status})"]))
    if progress.epochs:
        lines.append(html.Div(mask_use(progress.epochs, progress.settings), id="train-masks"))
    lines.append(html.Div(settings_summary(progress.settings, progress.used_settings), className="text-muted small",
                          id="train-settings"))
    # Stop polling once the run is over; a run read as succeeded comes with its candidate (run_progress).
    finished = progress.status in FINAL_STATUSES
    return (
        html.Div(lines),
        epoch_curves(progress.epochs, ("loss", "val_loss", "mask_loss", "val_mask_loss"), "Loss per epoch",
                     progress.total_epochs),
        epoch_curves(progress.epochs, ("accuracy", "val_accuracy", "recall", "val_recall", "auc", "val_auc"),
                     "Accuracy, recall, AUC per epoch", progress.total_epochs),
        finished,
    )
