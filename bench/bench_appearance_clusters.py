"""What balancing within appearance clusters does to a prepared training split.

    python -m bench.bench_appearance_clusters --prepared var/real_prepared [--clusters 8] [--seed 3]

Clusters the training scans as training does (ml.balance.appearance_clusters at the default input size),
then prints per cluster: its scans, their source classes, the tumor share, and the copies of a no-tumor and
of a tumor scan an epoch holds with plain class balancing and within clusters. A cluster that is nearly all
one class is a view or sequence from which a network can call the label without looking at the brain.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import print_table, write_results
from ml.train import TrainSettings


def _copies(order: np.ndarray, members: np.ndarray) -> float:
    """Mean copies per scan of `members` (a boolean mask over the training split) in an epoch's `order`."""
    return float(np.isin(order, np.flatnonzero(members)).sum() / max(members.sum(), 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="a prepared dataset folder (ml prepare)")
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--seed", type=int, default=TrainSettings().seed)
    args = parser.parse_args(argv)

    from ml.balance import appearance_clusters, oversample_indices, oversample_within_clusters
    from ml.dataset import load_split, read_metadata

    X, y = load_split(args.prepared, "train", image_size=TrainSettings().image_size)
    rows = read_metadata(args.prepared)
    source = rows.loc[rows["split"] == "train", "source_class"].to_numpy()
    clusters = appearance_clusters(X, args.clusters, seed=args.seed)
    plain = oversample_indices(y, seed=args.seed)
    within = oversample_within_clusters(y, clusters, seed=args.seed)

    classes = sorted(set(source))
    table, record = [], []
    for cluster in range(args.clusters):
        members = clusters == cluster
        counts = {name: int((members & (source == name)).sum()) for name in classes}
        entry = {"cluster": cluster, "scans": int(members.sum()), "tumor_share": float(y[members].mean()),
                 "sources": counts,
                 "copies_plain": {"no_tumor": _copies(plain, members & (y == 0)),
                                  "tumor": _copies(plain, members & (y == 1))},
                 "copies_within": {"no_tumor": _copies(within, members & (y == 0)),
                                   "tumor": _copies(within, members & (y == 1))}}
        record.append(entry)
        table.append([cluster, entry["scans"], *counts.values(), entry["tumor_share"],
                      entry["copies_plain"]["no_tumor"], entry["copies_within"]["no_tumor"],
                      entry["copies_within"]["tumor"]])
    print(f"{len(y)} training scans, {args.clusters} clusters (seed {args.seed}); an epoch holds "
          f"{len(plain)} scans with plain balancing, {len(within)} within clusters")
    print_table(["cluster", "scans", *classes, "tumor share", "no-tumor copies (plain)", "no-tumor copies (within)",
                 "tumor copies (within)"], table)
    write_results("appearance_clusters", {"prepared": str(args.prepared), "clusters": args.clusters,
                                          "seed": args.seed, "train_scans": int(len(y)),
                                          "epoch_plain": int(len(plain)), "epoch_within": int(len(within)),
                                          "per_cluster": record})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
