"""Write the three notebooks in notebooks/ from the cell sources below, without outputs.

    python scripts/make_notebooks.py          # rewrite notebooks/*.ipynb
    python scripts/make_notebooks.py --check  # exit 1 if a notebook differs from what this script writes

The notebooks are generated so that a change to them is reviewed here, as plain Python and Markdown,
not as JSON. Each cell calls the project's own functions (ml/, webapp/figures/); data comes from
notebooks/notebook_data.py (synthetic by default, TUMORSCREEN_NOTEBOOK_DATA for a real folder).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

SWITCH = """By default this runs on a small synthetic head-CT set made on the spot (seconds). To use real scans,
start Jupyter with `TUMORSCREEN_NOTEBOOK_DATA=/path/to/folder` (one sub-folder per class: glioma/,
meningioma/, pituitary/, no_tumor/, ... ; see `ml/classes.py` for the names understood). Outputs go to
`var/notebooks/` (or `TUMORSCREEN_NOTEBOOK_WORK`). `TUMORSCREEN_NOTEBOOK_SYNTHETIC_COUNT` (default 96)
and `TUMORSCREEN_NOTEBOOK_EPOCHS` (default 6) make the synthetic run larger."""

SETUP = """import notebook_data as nd

print("data:", nd.real_data_folder() or "synthetic CT (default)")
print("work folder:", nd.work_folder())"""

DATA_COLLECTION = [
    ("md", f"""# Data collection and preparation

How a folder of scans becomes a dataset the model can be trained and tested on, with every step
counted in a report: class mapping, decoding, de-duplication, grouping of look-alike slices, a split
by group, and the class balance.

{SWITCH}"""),
    ("code", SETUP),
    ("md", """## The source folder

One sub-folder per class. Sub-classes such as glioma, meningioma and pituitary merge into *tumor*;
no_tumor, healthy and normal into *no tumor*. The mapping is explicit, and folders that are not classes
(the synthetic set's `masks/`) are skipped with a reason."""),
    ("code", """from ml.classes import resolve_classes

source = nd.source_folder()
mapping = resolve_classes(source)
mapping.as_report()"""),
    ("md", """## Preparation

`ml.prepare.prepare_dataset` (the same code as `python -m ml prepare` and the admin page) decodes every
file (PNG, JPEG, DICOM with a brain window), crops to the head, pads to a square, resizes and normalises;
drops exact duplicates; groups near-duplicates (neighbouring slices of one patient look alike) and splits
train/validation/test **by group**, stratified, so that no group straddles two splits. (The synthetic
generator writes a `dataset.json` declaring its phantoms independent, so prepare groups them by exact
copies only: each phantom is a patient of its own. The report says which rule it used.)"""),
    ("code", """from ml.prepare import prepare_dataset

prepared = nd.work_folder() / "prepared"
report = prepare_dataset(source, prepared, size=nd.image_size(), seed=0)
{key: report[key] for key in ("files", "exact_duplicates", "splits")}"""),
    ("md", "The same report, as written next to the data (`report.md`), so a run can be reproduced:"),
    ("code", """from IPython.display import Markdown

Markdown((prepared / "report.md").read_text())"""),
    ("md", """## The metadata table

One row per kept image: where it came from, its label and source class, its similarity group, its split,
its hash and original size."""),
    ("code", """from ml.dataset import read_metadata

metadata = read_metadata(prepared)
metadata.head(8)"""),
    ("code", """# No similarity group may appear in two splits: that is what keeps the test set honest.
groups_per_split = metadata.groupby("group")["split"].nunique()
print("groups:", len(groups_per_split), "| groups in more than one split:", int((groups_per_split > 1).sum()))
metadata.pivot_table(index="split", columns="label", values="path", aggfunc="count", fill_value=0)"""),
    ("md", """## Class balance

The training split is balanced by oversampling the minority class (imbalanced-learn), by index and at
training time, so each image is stored once; validation and test are never resampled."""),
    ("code", """from webapp.figures.data import class_balance, splits

balance = report["class_balance"]
class_balance(balance["before"], balance["train_before_oversampling"], balance["train_after_oversampling"])"""),
    ("code", """splits(report["splits"]["per_label"])"""),
]

DATA_VISUALIZATION = [
    ("md", f"""# What tells tumor and non-tumor scans apart

A visual comparison of the two classes in the prepared dataset: how many of each, what the average
scan of each class looks like and how much scans vary, where the class means differ, sample montages,
and where a trained model looks (class activation heatmaps). The statistics are `ml/stats.py`, the
figures those of the web app's data explorer (`webapp/figures/data.py`).

{SWITCH}"""),
    ("code", SETUP + """

prepared = nd.prepared_folder()  # prepared once, by DataCollection or here"""),
    ("md", "## Class distribution, per split and source class"),
    ("code", """from ml.stats import class_counts, label_counts

print({split: label_counts(prepared, split) for split in ("train", "val", "test")})
class_counts(prepared)"""),
    ("md", """## Mean and variability images

The mean image of each class, and the per-pixel standard deviation: where scans of a class agree and
where they vary."""),
    ("code", """from ml.stats import class_mean_difference, mean_std_images
from webapp.figures.data import image_grid

means = mean_std_images(prepared)
image_grid({f"mean, {label}": mean for label, (mean, _) in means.items()}, "Mean image per class")"""),
    ("code", """image_grid({f"std, {label}": std for label, (_, std) in means.items()}, "Variability per class",
           colorscale="Viridis")"""),
    ("md", """## Difference of the class means

Mean tumor image minus mean no-tumor image. Lesions anywhere in the brain show as a diffuse positive
haze; a sharp structure here would be a warning sign of a shortcut (view, sequence, framing) that the
model could learn instead of the tumor."""),
    ("code", """image_grid({"tumor − no tumor": class_mean_difference(means)}, "Difference of the class means",
           colorscale="RdBu", zmid=0.0)"""),
    ("md", "## Sample montages"),
    ("code", """from ml.stats import samples_per_class
from webapp.figures.data import montage

samples = samples_per_class(prepared, per_class=8, seed=0)
montage(samples["tumor"][0], "tumor")"""),
    ("code", """montage(samples["no_tumor"][0], "no tumor")"""),
    ("md", """## Where the model looks

Class activation maps from the exported model's own outputs (`ml.predictor.Predictor`, the predictor the
screening worker uses). A quick model is trained first if none exists yet (ModelingAndEvaluating trains
and evaluates it properly)."""),
    ("code", """from ml.predictor import Predictor

predictor = Predictor.from_dir(nd.trained_model())
tumor_images = samples["tumor"][0][:4]
predictions = predictor.predict(tumor_images)
[(round(p.probability, 3), p.label) for p in predictions]"""),
    ("code", """image_grid({**{f"scan {i}": image for i, image in enumerate(tumor_images)},
            **{f"heatmap {i}": p.heatmap for i, p in enumerate(predictions)}},
           "Tumor scans and their heatmaps", colorscale="Inferno")"""),
]

MODELING = [
    ("md", f"""# Modeling and evaluating

Train the product's CNN from scratch (`ml.train`, the code the trainer worker runs), evaluate it on the
held-out test split (`ml.evaluate`, through the exported ONNX model and the TensorFlow-free predictor),
look at the decision threshold, score the heatmaps against the true tumor masks (synthetic data), and
compare with the baseline architecture of the earlier product.

On the synthetic default the model sees a few dozen scans for a few epochs, so its figures say that the
pipeline works, not how good the model is; with `TUMORSCREEN_NOTEBOOK_DATA` it trains with the product's
default settings.

{SWITCH}"""),
    ("code", SETUP + """

prepared = nd.prepared_folder()"""),
    ("md", "## Training"),
    ("code", """from ml.train import train

settings = nd.train_settings()
history = []
metrics = train(prepared, nd.model_folder("tumorscreen"), settings,
                on_epoch=lambda epoch, logs: history.append({"epoch": epoch, **logs}))
settings"""),
    ("code", """from webapp.figures.performance import training_curves

training_curves(history)"""),
    ("md", """## Evaluation on the test split

Accuracy, recall (sensitivity), specificity, precision, F1, ROC-AUC, PR-AUC, calibration error and
latency per scan, at the threshold chosen on the validation split."""),
    ("code", """from ml.evaluate import evaluate_dir

evaluation, scans, probability = evaluate_dir(nd.model_folder("tumorscreen"), prepared)
keys = ("accuracy", "recall", "specificity", "precision", "f1", "roc_auc", "pr_auc", "ece", "latency_ms_p50")
{key: evaluation.get(key) for key in keys}"""),
    ("md", """## Heatmaps against the true tumor

Synthetic scans come with the tumor's mask, so the heatmaps can be scored: `pointing_game` is the share
of test-split tumor scans whose heatmap peak lies inside the tumor, `mask_energy` the share of heatmap
mass inside it. (Real folders have no masks; this cell then says so.)"""),
    ("code", """from ml.dataset import read_metadata
from ml.evaluate import evaluate_arrays, load_raw
from ml.predictor import Predictor

if nd.masks_folder() is None:
    print("no masks for this data set")
else:
    predictor = Predictor.from_dir(nd.model_folder("tumorscreen"))
    raw = load_raw(nd.source_folder(), predictor, masks_dir=nd.masks_folder())
    test_sources = set(read_metadata(prepared).query("split == 'test'")["source_path"])
    keep = [i for i, name in enumerate(raw.names) if name in test_sources]
    scored, _ = evaluate_arrays(predictor, raw.images[keep], raw.labels[keep], [raw.masks[i] for i in keep])
    print({key: scored[key] for key in ("pointing_game", "mask_energy", "n_masks")})"""),
    ("md", """## Choosing the threshold

Training picks the threshold on the validation split, as the highest one that still meets the recall
target; the sweep below shows what moving it would do on the test split."""),
    ("code", """import json

import pandas as pd
from ml.metrics import binary_metrics

metadata = json.loads((nd.model_folder("tumorscreen") / "metadata.json").read_text())
chosen = metadata["threshold"]
print(f"recall target {settings.recall_target}; threshold chosen on validation: {chosen:.3f}")
rows = []
for threshold in sorted({0.1, 0.3, 0.5, 0.7, 0.9, round(chosen, 3)}):
    m = binary_metrics(scans.labels, probability, threshold)
    rows.append({"threshold": threshold, "recall": m["recall"], "specificity": m["specificity"],
                 "accuracy": m["accuracy"]})
pd.DataFrame(rows).set_index("threshold")"""),
    ("code", """from webapp.figures.performance import threshold_scores

threshold_scores(scans.labels.tolist(), probability.tolist(), threshold=0.5, operating=chosen)"""),
    ("md", """## Baseline comparison

The earlier product's architecture (Flatten + Dense head), trained on the same splits with the same
settings, evaluated on the same test scans."""),
    ("code", """baseline, _, baseline_probability = evaluate_dir(nd.trained_model("baseline", retrain=True), prepared)
pd.DataFrame({"TumorScreen CNN": {k: evaluation.get(k) for k in keys},
              "baseline": {k: baseline.get(k) for k in keys}})"""),
    ("code", """from ml.metrics import curves
from webapp.figures.performance import roc_curve

roc_curve([("TumorScreen CNN", curves(scans.labels, probability)["roc"]),
           ("baseline", curves(scans.labels, baseline_probability)["roc"])])"""),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                                   for kind, src in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    # Stable cell ids, so regenerating an unchanged notebook leaves git with nothing to commit.
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    return notebook


ALL = {
    "DataCollection.ipynb": DATA_COLLECTION,
    "DataVisualization.ipynb": DATA_VISUALIZATION,
    "ModelingAndEvaluating.ipynb": MODELING,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in ALL.items():
        text = nbformat.writes(build(cells)) + "\n"
        path = NOTEBOOKS / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python scripts/make_notebooks.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
