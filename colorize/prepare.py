"""The library part of `colorize prepare`: check every image of a source once, drop what cannot be trained on,
and write a deterministic train / validation / test split as a manifest with file hashes and a data report.

A source is a local folder (class sub-folders allowed), a text file of image paths, or a Hugging
Face dataset id. An image is dropped when it does not decode, is smaller than ``min_size`` on its
shorter side, has no colour (see `colorize.image_io.is_grayscale`), or repeats the bytes of an earlier
image. The split is `colorize.training.sources.split_dataset` applied twice (held-out part, then validation /
test inside it), stratified by class, so a given seed always gives the same files.
"""

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from tqdm.auto import tqdm

from .image_io import decode_image, is_grayscale
from .training.sources import IMAGE_COLUMN, load_image_dataset, split_dataset

SPLITS = ("train", "validation", "test")


@dataclass
class Checked:
    """One source image after its check: where it is, its class, hash and size, and why it was dropped."""

    file: str
    label: str | None
    sha256: str
    width: int = 0
    height: int = 0
    dropped: str | None = None


def image_bytes(value) -> bytes:
    if value.get("bytes") is not None:
        return value["bytes"]
    return Path(value["path"]).read_bytes()


def check_image(value, label: str | None, min_size: int, seen: dict[str, str]) -> Checked:
    """Hash and decode one undecoded ``datasets.Image`` value; fill ``dropped`` with the reason to skip it.
    ``seen`` maps the hashes met so far to their files."""
    data = image_bytes(value)
    digest = hashlib.sha256(data).hexdigest()
    checked = Checked(file=value.get("path") or "", label=label, sha256=digest)
    if digest in seen:
        checked.dropped = f"duplicate of {seen[digest] or 'an earlier image'}"
        return checked
    seen[digest] = checked.file
    try:
        image = decode_image({"bytes": data, "path": None})
    except Exception:  # PIL raises many types for broken files; all mean "cannot use it"
        checked.dropped = "undecodable"
        return checked
    checked.width, checked.height = image.size
    if min(image.size) < min_size:
        checked.dropped = "too small"
    elif is_grayscale(image):
        checked.dropped = "grayscale"
    return checked


def materialize(value, checked: Checked, folder: Path) -> str:
    """A file path for the image: its own, or (Hub datasets hold bytes) a copy written under ``folder``."""
    if value.get("path") and Path(value["path"]).is_file():
        return str(Path(value["path"]).resolve())
    image = PILImage.open(io.BytesIO(value["bytes"]))
    suffix = "." + (image.format or "png").lower().replace("jpeg", "jpg")
    path = folder / (checked.label or "images") / f"{checked.sha256[:16]}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(value["bytes"])
    return str(path.resolve())


def prepare(
    source: str,
    output_dir: str | Path,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    min_size: int = 32,
    image_column: str = IMAGE_COLUMN,
    dataset_config: str | None = None,
    show_progress: bool = True,
) -> dict:
    """Check, split and write ``manifest.csv``, ``{train,validation,test}.txt`` and ``data_report.{json,md}``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    local = Path(source).exists()
    dataset = load_image_dataset(
        train_data_dir=source if local else None, dataset_name=None if local else source,
        dataset_config_name=dataset_config, image_column=image_column,
    )
    label_names = dataset.features["label"].names if "label" in dataset.column_names else None
    labels = [label_names[i] for i in dataset["label"]] if label_names else [None] * len(dataset)

    checks, seen = [], {}
    for value, label in tqdm(zip(dataset[IMAGE_COLUMN], labels), total=len(dataset), desc="Checking images",
                             disable=not show_progress):
        checks.append(check_image(value, label, min_size, seen))
    kept = [index for index, checked in enumerate(checks) if checked.dropped is None]
    if len(kept) < 3:
        raise ValueError(f"Only {len(kept)} usable images in {source}: need at least one per split.")

    # Counts first (at least one image for a split asked for), then two class-stratified splits.
    num_validation = max(1, round(validation_fraction * len(kept))) if validation_fraction > 0 else 0
    num_test = max(1, round(test_fraction * len(kept))) if test_fraction > 0 else 0
    if num_validation + num_test >= len(kept):
        raise ValueError(f"{len(kept)} usable images are too few for {num_validation} validation and {num_test} test.")
    rows = dataset.add_column("row", list(range(len(dataset)))).select(kept)
    train, rest = split_dataset(rows, (num_validation + num_test) / len(kept), seed)
    validation, test = rest, None
    if rest is not None and num_test and num_validation:
        validation, test = split_dataset(rest, num_test / len(rest), seed)
    elif num_test:
        validation, test = None, rest
    split_of = {}
    for name, part in zip(SPLITS, (train, validation, test)):
        for row in (part["row"] if part is not None else []):
            split_of[row] = name

    images_folder = output_dir / "images"
    records = []
    for row in sorted(split_of):
        checked = checks[row]
        checked.file = materialize(dataset[row][IMAGE_COLUMN], checked, images_folder)
        records.append({"split": split_of[row], **vars(checked)})
    write_outputs(output_dir, records, checks, source, seed, validation_fraction, test_fraction, min_size)
    return json.loads((output_dir / "data_report.json").read_text())


def write_outputs(output_dir: Path, records, checks, source, seed, validation_fraction, test_fraction, min_size):
    with (output_dir / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["split", "file", "label", "sha256", "width", "height"])
        writer.writeheader()
        writer.writerows({key: record[key] for key in writer.fieldnames} for record in records)
    for split in SPLITS:
        files = [record["file"] for record in records if record["split"] == split]
        (output_dir / f"{split}.txt").write_text("".join(f"{file}\n" for file in files))

    counts = Counter((record["label"] or "all", record["split"]) for record in records)
    classes = sorted({label for label, _ in counts})
    dropped = [{"file": c.file, "label": c.label, "reason": c.dropped.split(" of ")[0], "detail": c.dropped}
               for c in checks if c.dropped]
    report = {
        "source": str(source),
        "seed": seed,
        "fractions": {"validation": validation_fraction, "test": test_fraction},
        "min_size": min_size,
        "num_source_images": len(checks),
        "num_kept": len(records),
        "splits": {split: sum(counts[c, split] for c in classes) for split in SPLITS},
        "per_class": {c: {split: counts[c, split] for split in SPLITS} for c in classes},
        "dropped": dict(Counter(item["reason"] for item in dropped)),
        "dropped_files": dropped,
    }
    (output_dir / "data_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Data report",
        "",
        f"Source `{source}`: {len(checks)} images, {len(records)} kept; split seed {seed}, "
        f"validation {validation_fraction:.0%}, test {test_fraction:.0%}, stratified by class.",
        "",
        "| class | " + " | ".join(SPLITS) + " | total |",
        "|---|" + "---|" * (len(SPLITS) + 1),
    ]
    for c in classes:
        row = [counts[c, split] for split in SPLITS]
        lines.append(f"| {c} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    lines.append("| **total** | " + " | ".join(str(report["splits"][s]) for s in SPLITS) + f" | {len(records)} |")
    lines += ["", "## Dropped", ""]
    if not dropped:
        lines.append("Nothing: every image decodes, is large enough, has colour and is unique.")
    for reason, count in report["dropped"].items():
        examples = ", ".join(f"`{item['file'] or '(bytes)'}`" + (f" ({item['detail']})" if item["detail"] != reason else "")
                             for item in dropped if item["reason"] == reason)
        lines.append(f"- {count} {reason}: {examples}")
    (output_dir / "data_report.md").write_text("\n".join(lines) + "\n")
