"""`python -m ml COMMAND ...`: the data scientists' entry point.

Each command lives in `ml/commands/<name>.py` with a `main(argv) -> int`. Only the chosen command's
module is imported, so `predict` never pays for TensorFlow and `--help` stays instant.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, str] = {
    "prepare": "prepare a folder-per-class dataset: decode, dedupe, group, split, report",
    "synth": "generate a synthetic head-CT dataset with tumor masks",
    "train": "train the CNN on a prepared dataset and write a model directory",
    "evaluate": "evaluate a model directory on a raw or prepared dataset",
    "predict": "predict files with a model directory (ONNX Runtime, no TensorFlow)",
}


def usage() -> str:
    lines = ["usage: python -m ml COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, summary in COMMANDS.items()]
    lines += ["", "python -m ml COMMAND --help for a command's options"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"ml.commands.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
