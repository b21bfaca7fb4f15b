"""What 8-bit integer convolutions would buy and cost: a model directory's ONNX network quantized statically
(ONNX Runtime's QDQ format, weights per channel, activations' ranges from training scans), then both networks
calibrated and thresholded on the validation split as training does, scored on the test split and timed.

    python -m bench.bench_int8 --model MODEL_DIR --prepared PREPARED_DIR [--masks DIR] [--int8-out DIR]
                               [--calibration-scans 512] [--method minmax|percentile|entropy]

PREPARED_DIR is the dataset the model was trained on. `--int8-out` writes the quantized model directory, for
bench_source_shift or bench_inference to run on. The product exports float32 only; this measures the option.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.common import write_results
from bench.exports import load_splits, print_exports, score_onnx, write_model_dir

METHODS = ("minmax", "percentile", "entropy")


def quantized(onnx_bytes: bytes, scans: np.ndarray, method: str = "minmax", batch: int = 16) -> bytes:
    """The network with int8 weights (per output channel) and uint8 activations whose ranges come from `scans`
    (N×S×S float32)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Scans(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": scans[i:i + batch, ..., None]} for i in range(0, len(scans), batch)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    calibration = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory() as work:
        source, prepared, out = (Path(work) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(onnx_bytes)
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out, Scans(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calibration)
        return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    from ml.evaluate import load_prepared

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--masks", type=Path, default=None, help="tumor masks (synthetic CT): score the heatmaps")
    parser.add_argument("--int8-out", type=Path, default=None, help="write the quantized model directory")
    parser.add_argument("--calibration-scans", type=int, default=512,
                        help="training scans, drawn at random, whose activations set the 8-bit ranges")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="how a range is read off them")
    args = parser.parse_args(argv)

    metadata, val, val_groups, test = load_splits(args.model, args.prepared, args.masks)
    train = load_prepared(args.prepared, metadata["image_size"], split="train")
    pick = np.random.default_rng(0).choice(len(train.labels), min(args.calibration_scans, len(train.labels)),
                                           replace=False)
    float_bytes = (args.model / "model.onnx").read_bytes()
    results = {"float32 (as exported)": score_onnx(float_bytes, metadata, val, val_groups, test),
               f"int8 ({args.method})": score_onnx(quantized(float_bytes, train.images[np.sort(pick)], args.method),
                                                   metadata, val, val_groups, test)}
    if args.int8_out is not None:
        write_model_dir(args.model, args.int8_out, results[f"int8 ({args.method})"])
    for result in results.values():
        del result["onnx"], result["metadata"]
    print_exports(f"{args.model}: each network calibrated and thresholded on validation ({len(val.labels)} scans), "
                  f"scored on test ({len(test.labels)}); int8 ranges from {len(pick)} training scans", results)
    if args.int8_out is not None:
        print(f"int8 model directory written to {args.int8_out}")
    write_results("int8", {"model": str(args.model), "prepared": str(args.prepared), "method": args.method,
                           "calibration_scans": int(len(pick)), "networks": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
