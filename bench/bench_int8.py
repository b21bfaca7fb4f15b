"""What the exported network's 8-bit convolutions (ml.quantize) buy and cost: a trained model exported in
float32 and quantized, each calibrated and thresholded on the validation split as training does, then scored on
the test split, with the forward pass timed. The quantized network is scored twice: with its weights in 7 bits,
as training exports it, and in the full 8 bits, which only processors with VNNI instructions compute right.

    python -m bench.bench_int8 --model MODEL_DIR --prepared PREPARED_DIR [--masks DIR] [--float32-out DIR]
                               [--int8-out DIR]

MODEL_DIR must hold the Keras model (`model.keras`) that training writes beside `model.onnx`; PREPARED_DIR is
the dataset it was trained on; the 8-bit ranges come from its training scans, drawn as training draws them.
`--float32-out` and `--int8-out` write the two model directories, for bench_source_shift or bench_inference.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import write_results
from bench.exports import load_splits, print_exports, score_onnx, write_model_dir


def main(argv: list[str] | None = None) -> int:
    import keras

    import ml.model  # noqa: F401  (registers the network's own layers, which loading the Keras model needs)
    from ml.evaluate import load_prepared
    from ml.export import to_onnx_bytes
    from ml.quantize import quantize
    from ml.train import calibration_sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--masks", type=Path, default=None, help="tumor masks (synthetic CT): score the heatmaps")
    parser.add_argument("--float32-out", type=Path, default=None, help="write the float32 model directory")
    parser.add_argument("--int8-out", type=Path, default=None, help="write the int8 model directory")
    args = parser.parse_args(argv)

    metadata, val, val_groups, test = load_splits(args.model, args.prepared, args.masks)
    train = load_prepared(args.prepared, metadata["image_size"], split="train")
    float_bytes = to_onnx_bytes(keras.saving.load_model(args.model / "model.keras"))
    scans = calibration_sample(train.images, metadata["settings"]["seed"])
    networks = {"float32": float_bytes, "int8, 7-bit weights (the export)": quantize(float_bytes, scans),
                "int8, 8-bit weights": quantize(float_bytes, scans, seven_bit_weights=False)}
    results = {name: score_onnx(network, metadata, val, val_groups, test) for name, network in networks.items()}
    exported = results["int8, 7-bit weights (the export)"]
    for out, result in ((args.float32_out, results["float32"]), (args.int8_out, exported)):
        if out is not None:
            write_model_dir(args.model, out, result)
    sizes = {name: len(result.pop("onnx")) for name, result in results.items()}
    for result in results.values():
        del result["metadata"]
    print_exports(f"{args.model}: each network calibrated and thresholded on validation ({len(val.labels)} scans), "
                  f"scored on test ({len(test.labels)}); ONNX files "
                  + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()), results)
    write_results("int8", {"model": str(args.model), "prepared": str(args.prepared), "onnx_bytes": sizes,
                           "networks": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
