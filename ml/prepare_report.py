"""The readable report.md of a prepare run, rendered from its report.json dictionary."""
from __future__ import annotations

from typing import Any


def render_markdown(report: dict[str, Any]) -> str:
    settings, files = report["settings"], report["files"]
    mapping, exact = report["class_mapping"], report["exact_duplicates"]
    cross, near = report["cross_label_duplicates"], report["near_duplicate_groups"]
    balance, splits = report["class_balance"], report["splits"]
    lines = ["# Prepared dataset report", ""]
    lines += ["## Settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in settings.items()]
    lines += ["", "## Class mapping", "", "| folder | label |", "| --- | --- |"]
    lines += [f"| {folder} | {label} |" for folder, label in mapping["folders"].items()]
    lines += [""]
    for folder, why in mapping["skipped_folders"].items():
        lines.append(f"- skipped folder `{folder}`: {why}")
    if mapping["ignored_files"]:
        lines.append(f"- ignored top-level files: {', '.join(mapping['ignored_files'])}")
    lines += [f"- tumor names: {', '.join(mapping['tumor_classes'])}",
              f"- no-tumor names: {', '.join(mapping['normal_classes'])}", ""]
    lines += ["## Files", "", f"- seen: {files['seen']} "
              f"({', '.join(f'{k} {v}' for k, v in files['seen_per_class'].items())})",
              f"- decoded: {files['decoded']} "
              f"({', '.join(f'{k} {v}' for k, v in files['formats'].items())})",
              f"- rejected: {files['rejected']}"]
    lines += [f"  - {reason}: {count}" for reason, count in files["rejected_by_reason"].items()]
    for item in files["rejected_files"][:50]:
        lines.append(f"  - `{item['source_path']}`: {item['reason']}")
    if files["rejected"] > 50:
        lines.append(f"  - … {files['rejected'] - 50} more in report.json")
    lines += ["", "## Duplicates", "", f"- exact duplicates dropped (same bytes or same decoded pixels, "
              f"same label): {exact['dropped']}"]
    lines += [f"  - `{e['dropped']}` = `{e['kept']}`" for e in exact["examples"]]
    lines += [f"- excluded as filed under both labels: {cross['excluded_images']} images"]
    lines += [f"  - exact: {', '.join(f'`{p}`' for p in s)}" for s in cross["exact_sets"][:20]]
    lines += [f"  - near copy ({c['similarity']}): `{c['a']}` ~ `{c['b']}`" for c in cross["near_copies"][:20]]
    lines += ["", "## Near-duplicate groups", "",
              f"Similarity: correlation of {settings['thumbnail_side']}×{settings['thumbnail_side']} "
              f"thumbnails of the normalised images, linked at ≥ {settings['group_threshold']} "
              f"(union-find).", "",
              f"- images kept: {near['images']}, in {near['groups']} groups",
              f"- groups with several images: {near['groups_with_several_images']}, holding "
              f"{near['images_in_such_groups']} images",
              f"- largest group sizes: {', '.join(str(s) for s in near['largest_sizes'])}",
              f"- group sizes (size: groups): "
              f"{', '.join(f'{k}: {v}' for k, v in near['size_histogram'].items())}",
              f"- groups holding both labels (kept whole in one split): {near['mixed_label_groups']}",
              "- the largest groups:"]
    for example in near["examples"]:
        labels = ", ".join(f"{k} {v}" for k, v in example["labels"].items() if v)
        lines.append(f"  - group {example['group']} ({example['size']} images: {labels}): "
                     f"{', '.join(f'`{m}`' for m in example['members'])}")
    lines += ["", "## Class balance", "", "| | no_tumor | tumor | ratio |", "| --- | --- | --- | --- |",
              _balance_row("all kept", balance["before"], balance["ratio_before"]),
              _balance_row("train", balance["train_before_oversampling"], None),
              _balance_row("train, oversampled", balance["train_after_oversampling"], balance["ratio_after"]),
              "", balance["note"], ""]
    lines += ["## Splits", "", "| split | no_tumor | tumor | total | groups | source classes |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, counts in splits["per_label"].items():
        classes = ", ".join(f"{k} {v}" for k, v in splits["per_source_class"][name].items())
        lines.append(f"| {name} | {counts['no_tumor']} | {counts['tumor']} | {sum(counts.values())} | "
                     f"{splits['groups_per_split'][name]} | {classes} |")
    crossing = splits["groups_crossing_splits"]
    lines += ["", f"Groups crossing splits: **{crossing}**"
              + (" (checked: every group lies in exactly one split)" if crossing == 0 else ""), ""]
    lines += ["## Timings", "", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in report["timings"].items()]
    lines.append("")
    return "\n".join(lines)


def _balance_row(name: str, counts: dict[str, int], ratio: float | None) -> str:
    shown = "" if ratio is None else f"{ratio}"
    return f"| {name} | {counts['no_tumor']} | {counts['tumor']} | {shown} |"
