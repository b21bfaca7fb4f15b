"""The arithmetic training runs in: float32 (the default), or mixed bfloat16 where the processor has it.

With "mixed_bfloat16" the convolutions and their gradients compute in bfloat16 while every weight, the optimizer's
state, batch normalisation's statistics and the network's head (pooling, dense unit, sigmoid) stay float32. On a
processor with AVX512-BF16 or AMX-BF16, oneDNN runs those convolutions natively: on an AMD EPYC host, brain-mri's
epochs took 26-43 s against 41-84 s in float32 (`python -m bench.bench_real_data --precision ...`, seed 0, one
after another). It scored a little lower: seeds 0-6 on that host gave ROC-AUC +0.0003, -0.0009, -0.0003, +0.0003,
0, -0.0007 and -0.0004 against float32's, and missed a model target in three seeds of the seven where float32
missed one, so the default is float32. Elsewhere bfloat16 would be emulated, so "auto" picks it only where it is
native. What is exported and scored is always float32: training copies the weights into a float32 network before
export, calibration and the threshold.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The processor's feature flags as Linux lists them; none where /proc/cpuinfo cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def resolve_precision(precision: str, flags: frozenset[str] | None = None) -> str:
    """"float32" or "bfloat16": what `precision` ("auto", "float32" or "bfloat16") means on this processor."""
    check_precision(precision)
    if precision != "auto":
        return precision
    return "bfloat16" if (cpu_flags() if flags is None else flags) & BFLOAT16_CPU_FLAGS else "float32"


@contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Layers built inside compute in `precision` ("float32" or "bfloat16", mixed: float32 weights)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
