"""Real data end to end: prepare brain-mri, train with the defaults, every metric on the test split.

    python -m bench.bench_real_data [--src ../shared/data/brain-mri] [--prepared DIR] [--out MODEL_DIR] [--seed N]
                                    [--epochs N] [--top-down STEPS]

The split is by similarity group (ml.prepare), so no near-duplicate of a test slice was trained on.
Wall time covers prepare + train (+ export, calibration and test evaluation, which train does).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import WORK, print_table, write_results
from ml.precision import PRECISIONS
from ml.train import TrainSettings

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-mri"
TARGETS = {"recall": 0.99, "specificity": 0.97, "accuracy": 0.985, "roc_auc": 0.998}
MAX_ECE = 0.03
MAX_WALL_S = 15 * 60
# The split's seed stays fixed whatever the training seed, so that runs are judged on one test split.
PREPARE_SEED = 0


def metric_rows(metrics: dict, wall_s: float) -> list[list]:
    rows = [[key, metrics[key], f">= {target}", "yes" if metrics[key] >= target else "NO"]
            for key, target in TARGETS.items()]
    rows.append(["ece", metrics["ece"], f"<= {MAX_ECE}", "yes" if metrics["ece"] <= MAX_ECE else "NO"])
    rows += [[key, metrics[key], "", ""] for key in ("precision", "f1", "pr_auc", "threshold", "latency_ms_p50",
                                                       "latency_ms_p95", "n")]
    rows.append(["confusion", " ".join(f"{k}={v}" for k, v in metrics["confusion"].items()), "", ""])
    rows.append(["wall time s", wall_s, f"<= {MAX_WALL_S}", "yes" if wall_s <= MAX_WALL_S else "NO"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--prepared", type=Path, default=WORK / "real_prepared")
    parser.add_argument("--out", type=Path, default=WORK / "real_model")
    parser.add_argument("--reuse-prepared", action="store_true", help="skip prepare when --prepared exists")
    parser.add_argument("--seed", type=int, default=TrainSettings().seed,
                        help="training seed (the split stays the one prepare made): runs of one recipe with "
                             "several seeds tell its noise from a change's effect")
    parser.add_argument("--epochs", type=int, default=TrainSettings().epochs,
                        help="epochs to train (the learning rate's cosine decay spans them)")
    parser.add_argument("--top-down", type=int, default=TrainSettings().top_down, metavar="STEPS",
                        help="steps of the top-down path, each doubling the heatmap grid's side "
                             "(TrainSettings.top_down; by default 1 where training has tumor masks, else 0)")
    parser.add_argument("--appearance-clusters", type=int, default=TrainSettings().appearance_clusters,
                        help="balance the classes within this many thumbnail clusters "
                             "(TrainSettings.appearance_clusters)")
    parser.add_argument("--precision", choices=PRECISIONS, default=TrainSettings().precision,
                        help="what the convolutions train in (TrainSettings.precision)")
    args = parser.parse_args(argv)

    from ml.prepare import prepare_dataset
    from ml.train import train

    settings = TrainSettings(top_down=args.top_down, seed=args.seed, epochs=args.epochs,
                             appearance_clusters=args.appearance_clusters, precision=args.precision)
    began = time.monotonic()
    if not (args.reuse_prepared and (args.prepared / "metadata.csv").is_file()):
        prepare_dataset(args.src, args.prepared, size=224, seed=PREPARE_SEED)
    prepared_s = time.monotonic() - began
    metrics = train(args.prepared, args.out, settings)
    wall_s = time.monotonic() - began
    history = json.loads((args.out / "curves.json").read_text())["history"]

    print(f"\nbrain-mri, group-disjoint test split: {metrics['n']} scans; model {args.out}")
    print(f"prepare {prepared_s:.0f} s, train+export+evaluate {wall_s - prepared_s:.0f} s, "
          f"{metrics['training']['epochs_run']} epochs (best {metrics['training']['best_epoch']}), "
          f"{metrics['training']['parameters']:,} parameters, {settings.image_size} px")
    print_table(["metric", "value", "target", "met"], metric_rows(metrics, wall_s))
    print("validation:", {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics["validation"].items()})
    write_results("real_data", {"settings": settings.__dict__, "prepare_s": prepared_s, "wall_s": wall_s,
                                "metrics": metrics, "history": history})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
