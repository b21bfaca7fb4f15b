"""How each threshold rule carries from the validation split to the test split, for one trained model.

    python -m bench.bench_threshold [--model MODEL_DIR] [--prepared PREPARED_DIR] [--recall-target 0.99]

The threshold is chosen after training, from the validation scans' calibrated probabilities, so every
rule can be compared on the same weights: the plain rule (the recall target on validation's own scans),
the plain rule asked for a slightly higher recall, and ml.calibration.choose_threshold with a recall
confidence, resampling scans or similarity groups.
The test split only judges; `oracle` rows pick the threshold on test itself and are there to show what
the ranking allows, not a rule anyone could use.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import WORK, print_table, write_results
from ml.calibration import choose_threshold
from ml.dataset import read_metadata
from ml.evaluate import load_prepared
from ml.metrics import binary_metrics
from ml.predictor import Predictor

CONFIDENCES = (0.7, 0.8, 0.9, 0.95)
# The plain rule asked for a little more than the target: a cheaper margin than a bootstrap confidence.
STRICTER_BY = (0.003, 0.005)


def split_scores(predictor: Predictor, prepared: Path, rows: pd.DataFrame, split: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, calibrated probabilities, similarity groups) of one split; `rows` is its metadata.csv."""
    scans = load_prepared(prepared, predictor.image_size, split=split)
    probability = np.array([p.probability for p in predictor.predict(scans.images)])
    return scans.labels.astype(int), probability, rows.loc[rows["split"] == split, "group"].to_numpy()


def oracle_threshold(y: np.ndarray, probability: np.ndarray, recall: float) -> float:
    """The highest threshold at which `recall` of these tumors score at or above it."""
    tumors = np.sort(probability[y == 1])
    return float(tumors[int(np.floor((1.0 - recall) * tumors.size))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=WORK / "real_model")
    parser.add_argument("--prepared", type=Path, default=WORK / "real_prepared")
    parser.add_argument("--recall-target", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (training uses its own seed)")
    args = parser.parse_args(argv)

    predictor = Predictor.from_dir(args.model, intra_op_threads=2)
    rows = read_metadata(args.prepared)
    y_val, p_val, groups = split_scores(predictor, args.prepared, rows, "val")
    y_test, p_test, _ = split_scores(predictor, args.prepared, rows, "test")
    target = args.recall_target
    rules = {"plain (validation scans)": choose_threshold(y_val, p_val, target)}
    for extra in STRICTER_BY:
        if target + extra <= 1.0:
            rules[f"plain, target {target + extra:g}"] = choose_threshold(y_val, p_val, target + extra)
    for confidence in CONFIDENCES:
        rules[f"confidence {confidence}, by scan"] = choose_threshold(y_val, p_val, target, confidence=confidence,
                                                                    seed=args.seed)
        rules[f"confidence {confidence}, by group"] = choose_threshold(y_val, p_val, target, confidence=confidence,
                                                                     groups=groups, seed=args.seed)
    for recall in (0.99, 0.98, 0.97):
        rules[f"oracle: test recall {recall}"] = oracle_threshold(y_test, p_test, recall)

    table, record = [], {}
    for name, threshold in rules.items():
        val, test = binary_metrics(y_val, p_val, threshold), binary_metrics(y_test, p_test, threshold)
        table.append([name, threshold, val["recall"], val["specificity"], test["recall"], test["specificity"],
                      test["accuracy"], test["confusion"]["fn"]])
        record[name] = {"threshold": threshold, "validation": val, "test": test}

    print(f"\nmodel {args.model} (its own threshold {predictor.threshold:.4f}); validation {len(y_val)} scans, "
          f"{int(y_val.sum())} tumors in {len(set(groups[y_val == 1]))} groups; test {len(y_test)} scans; "
          f"recall target {target}; test ROC-AUC {binary_metrics(y_test, p_test, 0.5)['roc_auc']:.4f}")
    print_table(["rule", "threshold", "val recall", "val specificity", "test recall", "test specificity",
                 "test accuracy", "test missed"], table)
    write_results("threshold", {"model": str(args.model), "recall_target": target, "rules": record})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
