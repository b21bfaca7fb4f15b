"""`python -m ml synth`: write a synthetic head-CT dataset (tumor/, no_tumor/, masks/, manifest.csv)."""
from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from ml.synthetic import generate_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml synth",
        description="Generate synthetic head-CT slices with and without tumors, with true tumor masks.",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--count", type=int, default=1000, help="number of slices (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed: same seed, same bytes (default 0)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--tumor-fraction", type=float, default=0.5, help="share of slices with a tumor (default 0.5)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 0 or args.size < 64 or not 0.0 <= args.tumor_fraction <= 1.0:
        print("synth: need --count >= 0, --size >= 64 and 0 <= --tumor-fraction <= 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tqdm(total=args.count, unit="slice", desc="synth") as bar:
        manifest = generate_dataset(
            args.out, args.count, args.seed, size=args.size, tumor_fraction=args.tumor_fraction,
            workers=args.workers, on_progress=bar.update,
        )
    print(f"wrote {args.count} slices to {args.out} in {time.perf_counter() - started:.1f} s; manifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
