"""What the exported network's second view buys: one trained model exported in float32 with both views, the
turned one moved half a heatmap cell, as screening runs it less the 8-bit convolutions (bench_int8 measures those),
with the turned view in place (the export until 2026-12-07), and upright only (ml.model.inference_model), each
calibrated and thresholded on the validation split as training does, then scored on the test split, with the
forward pass timed.

    python -m bench.bench_views --model MODEL_DIR --prepared PREPARED_DIR [--masks DIR] [--out DIR]

MODEL_DIR must hold the Keras model (`model.keras`) that training writes beside `model.onnx`; PREPARED_DIR is
the dataset it was trained on. `--masks` (synthetic CT) also scores the heatmaps. `--out` writes each export's
model directory under DIR (`moved`, `in_place`, `upright`), for bench_source_shift or bench_inference to run on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import write_results
from bench.exports import load_splits, print_exports, score_onnx, write_model_dir

# Each export's name: the folder --out writes it to, and how ml.model.inference_model looks.
EXPORTS = {"turned view moved": ("moved", {}),
           "turned view in place": ("in_place", {"move_turned_view": False}),
           "upright only": ("upright", {"turned_view": False})}


def main(argv: list[str] | None = None) -> int:
    import keras

    import ml.model  # noqa: F401  (registers the network's own layers, which loading the Keras model needs)
    from ml.export import to_onnx_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--masks", type=Path, default=None, help="tumor masks (synthetic CT): score the heatmaps")
    parser.add_argument("--out", type=Path, default=None, help="write each export's model directory under DIR")
    args = parser.parse_args(argv)

    metadata, val, val_groups, test = load_splits(args.model, args.prepared, args.masks)
    model = keras.saving.load_model(args.model / "model.keras")
    results = {name: score_onnx(to_onnx_bytes(model, **looks), metadata, val, val_groups, test)
               for name, (_, looks) in EXPORTS.items()}

    if args.out is not None:
        for name, (folder, _) in EXPORTS.items():
            write_model_dir(args.model, args.out / folder, results[name])
    for result in results.values():
        del result["onnx"], result["metadata"]
    print_exports(f"{args.model}: each export calibrated and thresholded on validation ({len(val.labels)} scans), "
                  f"scored on test ({len(test.labels)})", results)
    if args.out is not None:
        print(f"model directories written under {args.out}: " + ", ".join(f for f, _ in EXPORTS.values()))
    write_results("views", {"model": str(args.model), "prepared": str(args.prepared), "exports": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
