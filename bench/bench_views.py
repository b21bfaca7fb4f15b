"""What the exported network's second view buys: one trained model exported in float32 with both views, as
screening runs it less the 8-bit convolutions (bench_int8 measures those), and upright only (ml.model.
inference_model), each calibrated and thresholded on the validation split as training does, then scored on the
test split, with the forward pass timed.

    python -m bench.bench_views --model MODEL_DIR --prepared PREPARED_DIR [--masks DIR] [--upright-out DIR]

MODEL_DIR must hold the Keras model (`model.keras`) that training writes beside `model.onnx`; PREPARED_DIR is
the dataset it was trained on. `--masks` (synthetic CT) also scores the heatmaps. `--upright-out` writes the
upright-only model directory, for bench_source_shift or bench_inference to run on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import write_results
from bench.exports import load_splits, print_exports, score_onnx, write_model_dir

EXPORTS = {"two views": True, "upright only": False}


def main(argv: list[str] | None = None) -> int:
    import keras

    import ml.model  # noqa: F401  (registers the network's own layers, which loading the Keras model needs)
    from ml.export import to_onnx_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--masks", type=Path, default=None, help="tumor masks (synthetic CT): score the heatmaps")
    parser.add_argument("--upright-out", type=Path, default=None, help="write the upright-only model directory")
    args = parser.parse_args(argv)

    metadata, val, val_groups, test = load_splits(args.model, args.prepared, args.masks)
    model = keras.saving.load_model(args.model / "model.keras")
    results = {name: score_onnx(to_onnx_bytes(model, turned_view=turned), metadata, val, val_groups, test)
               for name, turned in EXPORTS.items()}

    if args.upright_out is not None:
        write_model_dir(args.model, args.upright_out, results["upright only"])
    for result in results.values():
        del result["onnx"], result["metadata"]
    print_exports(f"{args.model}: each export calibrated and thresholded on validation ({len(val.labels)} scans), "
                  f"scored on test ({len(test.labels)})", results)
    if args.upright_out is not None:
        print(f"upright-only model directory written to {args.upright_out}")
    write_results("views", {"model": str(args.model), "prepared": str(args.prepared), "exports": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
