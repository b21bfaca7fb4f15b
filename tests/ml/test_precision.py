from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ml.precision import cpu_flags, resolve_precision
from ml.train import TrainSettings
from tests.model_fixtures import build_tiny_model_dir, tiny_images

INDEX_TYPES = (onnx.TensorProto.INT32, onnx.TensorProto.INT64)  # shapes and axes, in any exported graph


@pytest.mark.parametrize(("flags", "expected"), [
    ({"fpu", "avx2", "avx512f", "avx512_bf16"}, "bfloat16"),
    ({"fpu", "amx_bf16", "amx_tile"}, "bfloat16"),
    ({"fpu", "avx2", "avx512f", "avx512_vnni"}, "float32"),
    (set(), "float32"),
])
def test_auto_trains_in_bfloat16_only_where_the_processor_has_it(flags, expected):
    assert resolve_precision("auto", frozenset(flags)) == expected


def test_an_explicit_precision_is_kept_whatever_the_processor():
    assert resolve_precision("bfloat16", frozenset()) == "bfloat16"
    assert resolve_precision("float32", frozenset({"avx512_bf16"})) == "float32"


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match=r"^precision must be one of auto, float32, bfloat16, got 'float16'$"):
        resolve_precision("float16")
    with pytest.raises(ValueError, match=r"^precision must be one of auto, float32, bfloat16, got 'half'$"):
        TrainSettings(precision="half")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx512_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_model_trained_in_bfloat16_is_exported_and_saved_in_float32(tmp_path):
    import keras

    from ml.model import inference_model

    # Exported in float32 throughout, so that nothing in the graph is bfloat16 or 8 bits (tests/ml/test_model.py
    # has the 8-bit export).
    metrics = build_tiny_model_dir(tmp_path / "m", precision="bfloat16", quantize=False)
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["settings"]["precision"] == "bfloat16"
    assert metrics["accuracy"] >= 0.95  # it learnt the tiny task, as the float32 fixture does
    graph = onnx.load(str(tmp_path / "m" / "model.onnx")).graph
    weight_types = {tensor.data_type for tensor in graph.initializer if tensor.data_type not in INDEX_TYPES}
    assert weight_types == {onnx.TensorProto.FLOAT}
    assert not [node for node in graph.node if node.op_type == "Cast"
                and any(attribute.i not in (onnx.TensorProto.FLOAT, *INDEX_TYPES) for attribute in node.attribute)]

    images, _, _ = tiny_images(8, seed=42)
    saved = keras.saving.load_model(tmp_path / "m" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    keras_outputs = inference_model(saved).predict(images, verbose=0)
    onnx_outputs = ort.InferenceSession(str(tmp_path / "m" / "model.onnx")).run(None, {"image": images})
    assert len(onnx_outputs) == len(keras_outputs)
    for expected, actual in zip(keras_outputs, onnx_outputs):
        np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_float32_is_the_default_and_recorded(tiny_model_dir):
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert metadata["settings"]["precision"] == "float32"


def test_auto_is_recorded_as_the_precision_it_resolved_to(tmp_path):
    build_tiny_model_dir(tmp_path / "m", epochs=1, precision="auto")
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["settings"]["precision"] == resolve_precision("auto")


def test_train_command_refuses_an_unknown_precision(tmp_path, capsys):
    from ml.commands.train import main as train_main

    with pytest.raises(SystemExit) as exit_info:
        train_main(["--data", str(tmp_path), "--out", str(tmp_path / "m"), "--precision", "float16"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument --precision: invalid choice: 'float16' (choose from 'auto', 'float32', 'bfloat16')\n")
    assert not (tmp_path / "m").exists()
