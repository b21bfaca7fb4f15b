"""`python -m worker COMMAND`: operations and scripts, through the same code paths as the web UI.

  screen PATH... [--wait] [--json]       create a batch exactly as an upload does (folders: every file)
  train --data DIR [--epochs N] [--image-size N] [--recall-target R] [--recall-confidence C|off]
        [--mask-weight W] [--wait]
  models [--json]                         model versions with status and key metrics
  promote VERSION [--force]               make a version active (the gate applies unless --force)
  rollback                                re-activate the previous version
  first-run [--count N] [--epochs N] [--image-size N]   train and promote a first model if none exists
  sweep                                   one sweeper pass (re-send stuck batches, fail lost runs)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.db import session_scope
from core.models import BATCH_FINAL_STATUSES, Batch, ModelVersion, Prediction, Scan, TrainingEpoch, TrainingRun
from ml.commands.train import DEFAULTS, RECALL_CONFIDENCE_HELP, confidence

POLL_S = 0.2
NOT_GIVEN = object()  # an option left out, so the training default applies (None already means "off")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except ValueError as error:  # every *Error the worker's light modules raise for a bad request
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description="TumorScreen worker operations")
    commands = parser.add_subparsers(dest="command")

    screen = commands.add_parser("screen", help="screen files (PNG, JPEG, DICOM, ZIP) as one batch")
    screen.add_argument("paths", nargs="+", type=Path)
    screen.add_argument("--wait", action="store_true", help="return when the batch is finished")
    screen.add_argument("--json", action="store_true", help="print one JSON object")
    screen.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")
    screen.set_defaults(handler=cmd_screen)

    train = commands.add_parser("train", help="train a candidate model on a folder-per-class dataset")
    train.add_argument("--data", required=True, help="folder-per-class dataset on the training machine")
    train.add_argument("--epochs", type=int)
    train.add_argument("--image-size", type=int)
    train.add_argument("--recall-target", type=float,
                       help=f"recall the threshold must reach (default {DEFAULTS.recall_target})")
    train.add_argument("--recall-confidence", type=confidence, default=NOT_GIVEN, help=RECALL_CONFIDENCE_HELP)
    train.add_argument("--mask-weight", type=float,
                       help="weight of the tumor-mask loss where DIR has a masks/ folder, as python -m ml synth "
                            f"writes it; 0: the labels alone (default {DEFAULTS.mask_weight})")
    train.add_argument("--name", help="dataset name (default: the folder's name)")
    train.add_argument("--wait", action="store_true", help="follow the run and print the candidate's version")
    train.set_defaults(handler=cmd_train)

    models = commands.add_parser("models", help="list model versions")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=cmd_models)

    promote = commands.add_parser("promote", help="make a model version active")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="override the promotion gate (audited)")
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser("rollback", help="re-activate the previously active version")
    rollback.set_defaults(handler=cmd_rollback)

    first = commands.add_parser("first-run", help="train and promote a first model if none exists")
    first.add_argument("--count", type=int, help="synthetic slices to generate (default 600)")
    first.add_argument("--epochs", type=int, help="training epochs (default 10)")
    first.add_argument("--image-size", type=int, help="model input side in pixels (default 128)")
    first.set_defaults(handler=cmd_first_run)

    sweep = commands.add_parser("sweep", help="one sweeper pass")
    sweep.set_defaults(handler=cmd_sweep)
    return parser


def _files(paths: list[Path]) -> list[tuple[str, bytes]]:
    files = []
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                files.append((child.relative_to(path.parent).as_posix(), child.read_bytes()))
        elif path.is_file():
            files.append((path.name, path.read_bytes()))
        else:
            raise ValueError(f"{path}: no such file or folder")
    return files


def cmd_screen(args: argparse.Namespace) -> int:
    from worker.intake import IntakeFile, submit_batch

    result = submit_batch([IntakeFile(name, data) for name, data in _files(args.paths)], user_id=None, source="cli")
    if not args.json:
        print(f"batch {result.batch_id}: {result.accepted} accepted, {len(result.rejected)} rejected, "
              f"{len(result.duplicates)} duplicate(s)" + ("" if result.enqueued else
                                                          "; broker unreachable, the sweeper will send it"))
    if args.wait:
        deadline = time.monotonic() + args.timeout
        while _batch_status(result.batch_id) not in BATCH_FINAL_STATUSES:
            if time.monotonic() > deadline:
                print(f"error: batch {result.batch_id} not finished after {args.timeout:.0f} s", file=sys.stderr)
                return 1
            time.sleep(POLL_S)
    report = batch_report(result.batch_id)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for entry in report["files"]:
            if entry["status"] == "predicted" or (entry["status"] == "duplicate" and entry["label"]):
                review = "  needs review" if entry["needs_review"] else ""
                print(f"  {entry['file']}: {entry['label']} ({entry['probability']:.3f}){review}"
                      + (" [duplicate]" if entry["status"] == "duplicate" else ""))
            else:
                print(f"  {entry['file']}: {entry['status']}" + (f": {entry['error']}" if entry["error"] else ""))
        print(f"batch {result.batch_id}: {report['status']}")
    return 1 if report["status"] == "failed" else 0


def _batch_status(batch_id: int) -> str:
    with session_scope() as session:
        return session.scalar(select(Batch.status).where(Batch.id == batch_id)) or "failed"


def batch_report(batch_id: int) -> dict[str, Any]:
    """{batch_id, status, files: [{file, status, probability, label, needs_review, error}]}; a
    duplicate carries the prediction of the scan it duplicates."""
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        scans = list(session.scalars(select(Scan).where(Scan.batch_id == batch_id).order_by(Scan.position)))
        predictions: dict[int, Prediction] = {}
        for prediction in session.scalars(select(Prediction).join(Scan).where(Scan.batch_id == batch_id)
                                          .order_by(Prediction.id)):
            predictions[prediction.scan_id] = prediction  # the latest model's, when there are several
        by_id = {scan.id: scan for scan in scans}
        files = []
        for scan in scans:
            source = by_id.get(scan.duplicate_of_id, scan) if scan.status == "duplicate" else scan
            prediction = predictions.get(source.id)
            error = scan.error
            if scan.status == "duplicate":
                error = f"duplicate of {source.filename}"
            files.append({
                "file": scan.filename,
                "status": scan.status,
                "probability": round(prediction.probability, 6) if prediction else None,
                "label": prediction.label if prediction else None,
                "needs_review": prediction.needs_review if prediction else None,
                "error": error,
            })
        return {"batch_id": batch_id, "status": batch.status, "files": files}


def cmd_train(args: argparse.Namespace) -> int:
    from worker.datasets import register_dataset
    from worker.training_runs import start_training_run, train_settings

    data = Path(args.data).resolve()
    if not data.is_dir():
        raise ValueError(f"{args.data}: no such folder")
    chosen = {"epochs": args.epochs, "image_size": args.image_size, "recall_target": args.recall_target,
              "mask_weight": args.mask_weight}
    settings: dict[str, Any] = {name: value for name, value in chosen.items() if value is not None}
    if args.recall_confidence is not NOT_GIVEN:
        settings["recall_confidence"] = args.recall_confidence
    train_settings(settings)  # refused settings register no dataset
    with session_scope() as session:
        dataset = register_dataset(session, "folder", str(data), args.name or data.name, None)
        run = start_training_run(session, dataset.id, settings, None)
        run_id = run.id
    print(f"training run {run_id} queued on dataset {dataset.id} ({data})")
    if not args.wait:
        return 0
    return _follow_run(run_id)


def _follow_run(run_id: int) -> int:
    shown = 0
    while True:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            epochs = list(session.scalars(select(TrainingEpoch).where(TrainingEpoch.run_id == run_id,
                                                                      TrainingEpoch.epoch > shown)
                                          .order_by(TrainingEpoch.epoch)))
            status, error = run.status, run.error
            version = session.scalar(select(ModelVersion.version).where(ModelVersion.training_run_id == run_id))
        for epoch in epochs:
            m = epoch.metrics
            print(f"  epoch {epoch.epoch}: loss {m.get('loss', float('nan')):.4f} "
                  f"val_loss {m.get('val_loss', float('nan')):.4f} val_recall {m.get('val_recall', float('nan')):.3f}")
            shown = epoch.epoch
        if status in ("succeeded", "failed", "cancelled"):
            if status == "succeeded":
                print(version)
                return 0
            print(f"error: training run {run_id} {status}: {error}", file=sys.stderr)
            return 1
        time.sleep(1.0)


def _version_row(version: ModelVersion) -> dict[str, Any]:
    metrics = version.metrics or {}
    return {
        "version": version.version, "status": version.status, "created_at": version.created_at.isoformat(),
        "promoted_at": version.promoted_at.isoformat() if version.promoted_at else None,
        "image_size": version.image_size, "threshold": version.threshold,
        **{key: metrics.get(key) for key in ("recall", "specificity", "accuracy", "roc_auc")},
        "training_run_id": version.training_run_id,
    }


def cmd_models(args: argparse.Namespace) -> int:
    from worker.model_registry import list_versions

    with session_scope() as session:
        rows = [_version_row(v) for v in list_versions(session)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model versions (python -m worker first-run trains one)")
        return 0
    print(f"{'version':<8} {'status':<10} {'recall':>7} {'spec.':>7} {'acc.':>7} {'AUC':>7}  created")
    for row in rows:
        figures = " ".join(f"{row[k]:>7.3f}" if row[k] is not None else f"{'-':>7}"
                           for k in ("recall", "specificity", "accuracy", "roc_auc"))
        print(f"{row['version']:<8} {row['status']:<10} {figures}  {row['created_at'][:19]}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from worker.model_registry import promote

    with session_scope() as session:
        version = promote(session, args.version, None, force=args.force)
        print(f"{version.version} is now the active model" + (" (gate overridden)" if args.force else ""))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from worker.model_registry import rollback

    with session_scope() as session:
        version = rollback(session, None)
        print(f"rolled back: {version.version} is the active model again")
    return 0


def cmd_first_run(args: argparse.Namespace) -> int:
    from worker.first_run import first_run

    from worker.first_run import FIRST_RUN_SLICES

    settings = {key: value for key, value in (("epochs", args.epochs), ("image_size", args.image_size))
                if value is not None}
    try:
        first_run(count=args.count or FIRST_RUN_SLICES, settings=settings,
                  progress=lambda line: print(line, flush=True))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from worker.sweeper import sweep

    report = sweep()
    print(f"re-sent batches: {report.resent_batches or 'none'}; failed training runs: "
          f"{report.failed_runs or 'none'}; re-sent training runs: {report.resent_runs or 'none'}")
    return 0
