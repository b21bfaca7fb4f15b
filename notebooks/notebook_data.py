"""Where the notebooks find their data, so each of the three runs on its own, in any order.

By default they use a small synthetic head-CT set (`ml.synthetic`) that takes seconds to make. Set
TUMORSCREEN_NOTEBOOK_DATA to a folder-per-class dataset (e.g. glioma/, meningioma/, no_tumor/ ...) to
run them on real scans instead; outputs go to TUMORSCREEN_NOTEBOOK_WORK (default var/notebooks/).
Everything here only calls the project's own functions: ml.synthetic, ml.prepare and ml.train.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the notebooks run from notebooks/, the packages live one level up
    sys.path.insert(0, str(ROOT))

# The default synthetic set: small enough that every notebook runs in about a minute on 2 cores; too
# small for the CNN to learn the subtle synthetic lesions (that takes about 2,000 slices at 256 px, see
# bench/bench_synthetic.py). TUMORSCREEN_NOTEBOOK_SYNTHETIC_COUNT asks for a larger set.
SYNTHETIC_COUNT = int(os.environ.get("TUMORSCREEN_NOTEBOOK_SYNTHETIC_COUNT", "96"))
SYNTHETIC_SIZE = 128
SYNTHETIC_TUMOR_FRACTION = 0.4  # not 50/50, so the imbalance report and oversampling have work to do
SYNTHETIC_SEED = 7


def real_data_folder() -> Path | None:
    """The folder named by TUMORSCREEN_NOTEBOOK_DATA, or None for the synthetic default."""
    value = os.environ.get("TUMORSCREEN_NOTEBOOK_DATA", "").strip()
    if not value:
        return None
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"TUMORSCREEN_NOTEBOOK_DATA={value}: not a folder")
    return folder


def work_folder() -> Path:
    """Where prepared data and models go; separate folders for synthetic and real data."""
    base = Path(os.environ.get("TUMORSCREEN_NOTEBOOK_WORK") or ROOT / "var" / "notebooks").expanduser()
    real = real_data_folder()
    folder = base / (f"real-{real.name}" if real else f"synthetic-{SYNTHETIC_COUNT}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def image_size() -> int:
    """Side of the prepared images: small for the synthetic demo, the product's training size for real data."""
    return 128 if real_data_folder() else 64


def source_folder() -> Path:
    """The raw folder-per-class dataset: the real one, or the synthetic set (generated once)."""
    real = real_data_folder()
    if real:
        return real
    from ml.synthetic import generate_dataset

    folder = work_folder() / "raw"
    if not (folder / "manifest.csv").exists():
        generate_dataset(folder, SYNTHETIC_COUNT, seed=SYNTHETIC_SEED, size=SYNTHETIC_SIZE,
                         tumor_fraction=SYNTHETIC_TUMOR_FRACTION)
    return folder


def masks_folder() -> Path | None:
    """Ground-truth tumor masks (synthetic data only), for scoring the heatmaps."""
    folder = source_folder() / "masks"
    return folder if folder.is_dir() else None


def prepared_folder(rebuild: bool = False) -> Path:
    """The prepared dataset (`python -m ml prepare`), made from `source_folder()` if missing."""
    from ml.prepare import prepare_dataset

    folder = work_folder() / "prepared"
    if rebuild or not (folder / "metadata.csv").exists():
        prepare_dataset(source_folder(), folder, size=image_size(), seed=0)
    return folder


def train_settings(**overrides):
    """Training settings: a few quick epochs on the synthetic demo, the product's defaults on real data."""
    from ml.train import TrainSettings

    if real_data_folder():
        settings = TrainSettings(image_size=image_size())
    else:
        settings = TrainSettings(epochs=int(os.environ.get("TUMORSCREEN_NOTEBOOK_EPOCHS", "6")), batch_size=16,
                                 image_size=image_size(), width=8, depth=4, learning_rate=5e-3, patience=6,
                                 intensity_augment=False)  # synthetic CT: one fixed window
    return replace(settings, **overrides)


def model_folder(architecture: str = "tumorscreen") -> Path:
    return work_folder() / f"model-{architecture}"


def trained_model(architecture: str = "tumorscreen", retrain: bool = False) -> Path:
    """A model directory trained on `prepared_folder()`, trained now if there is none yet."""
    from ml.train import train

    folder = model_folder(architecture)
    if retrain or not (folder / "model.onnx").exists():
        train(prepared_folder(), folder, train_settings(architecture=architecture))
    return folder
