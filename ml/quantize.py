"""8-bit integer convolutions for the exported network (ONNX Runtime's static quantization, QDQ format).

The convolutions, their ReLUs and the pooling between them run on int8 weights (one scale per output channel)
and uint8 maps whose ranges are read off training scans. The head (the two views' average, global pooling, the
dense unit) stays float32, so the class activation map drawn from the maps the network outputs still gives the
logit exactly; quantized too, it missed the logit by up to 0.09 on brain-mri. Measured with `python -m bench.bench_int8`
(brain-mri, seeds 4-6, 2026-12-06, an Intel host with VNNI instructions): the same test confusion and the same
scores on web-collected slices as float32, each thresholded on validation; 1.3-1.9 times the forward throughput on
two threads; 0.67 MB of ONNX against 2.33 (docs/MODEL.md).

The weights keep to 7 bits of their 8 (`reduce_range`), because the network must answer alike on every processor it
may run on, and the trainer cannot know which. Without VNNI instructions (AVX2 or AVX-512 alone, as on AMD Zen 3
and older Intel processors), ONNX Runtime multiplies uint8 maps by int8 weights in pairs summed in 16 bits, which
255 · 127 · 2 overflows: with full-range weights, a test model's logits were off by up to 0.56 of their range on an
AMD Zen 3 host (0.004 on an Intel host with VNNI); with 7-bit weights, by 0.005 there. On brain-mri (seeds 4 and 6,
that host), the 7-bit network made every test decision its float32 export made; with its threshold fitted anew, the
8-bit one had 4 and 1 more false positives (and 2 and 1 fewer missed tumors).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

QUANTIZED_OPS = ("Conv", "Relu", "MaxPool")
# Training scans whose maps set the 8-bit ranges. Quantizing brain-mri's network added about 360 MiB to the
# process for 128 scans as for 512 (2.1 and 4.5 s).
CALIBRATION_SCANS = 512


def quantize(onnx_bytes: bytes, scans: np.ndarray, batch: int = 16, seven_bit_weights: bool = True) -> bytes:
    """The network of `onnx_bytes` with its convolutions in 8 bits, their ranges the extremes (min and max) of
    what they produce for `scans` (N×S×S float32 in [0, 1]). `seven_bit_weights=False` uses the weights' full
    8-bit range, which is wrong on processors without VNNI (above): for measuring that, not for export."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Scans(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": np.asarray(scans[i:i + batch, ..., None], np.float32)}
                                 for i in range(0, len(scans), batch)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as work:
        source, prepared, out = (Path(work) / name for name in ("float32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(onnx_bytes)
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out, Scans(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(QUANTIZED_OPS),
                        reduce_range=seven_bit_weights)
        return out.read_bytes()
