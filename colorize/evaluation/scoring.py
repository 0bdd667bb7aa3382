"""Scoring a colorizer on photos whose colours are known: the one scoring function of `colorize evaluate` and of
validation during training (`colorize_and_score`), the per-photo scores (`score`, `ImageScores`), their means
(`summarize`) and the scores of the whole set (`SetScores`). Metric definitions: `colorize.evaluation.metrics`.
"""

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import torch
from tqdm.auto import tqdm

from ..color import rgb_to_gray
from ..image_io import open_image, pil_to_tensor
from ..pipeline_colorization import DEFAULT_GUIDANCE_SCALE
from ..schedulers import scheduler_name
from ..seeding import sample_generators
from ..visualize import STRIP_FRAMES, denoising_strip, gray_picture, make_grid, tensor_to_pil
from .metrics import (
    ChromaClassifier, ImageNetFeatures, ab_histogram, auc, chroma_features, chroma_map, chroma_picture, colorfulness,
    confusion_counts, jensen_shannon, kernel_inception_distance, psnr, shrink, ssim,
)

# Per-photo scores and their means, as `colorize evaluate` and the training validation report them.
MEAN_KEYS = ["psnr", "ssim", "auc", "colorfulness", "colorfulness_reference", "gray_psnr", "gray_ssim", "gray_auc"]


@dataclass
class ImageScores:
    """Scores of one photo; with several samples, the mean over them (and the best PSNR)."""

    file: str
    group: str | None
    psnr: float
    ssim: float
    auc: float
    colorfulness: float
    colorfulness_reference: float
    gray_psnr: float
    gray_ssim: float
    gray_auc: float
    psnr_best_of_n: float


def score(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Metrics of N colorizations (N, 3, H, W) of one photo against its truth (1, 3, H, W)."""
    truths = truth.expand_as(samples)
    gray = rgb_to_gray(truth)
    sample_psnr = psnr(samples, truths)
    return {
        "psnr": sample_psnr.mean().item(),
        "ssim": ssim(samples, truths).mean().item(),
        "auc": auc(samples, truths).mean().item(),
        "colorfulness": colorfulness(samples).mean().item(),
        "colorfulness_reference": colorfulness(truth).item(),
        "gray_psnr": psnr(gray, truth).item(),
        "gray_ssim": ssim(gray, truth).item(),
        "gray_auc": auc(gray, truth).item(),
        "psnr_best_of_n": sample_psnr.max().item(),
    }


def summarize(scores: list[ImageScores], with_best_of_n: bool) -> dict:
    """Means over images; ``colorfulness_ratio`` = mean colourfulness / mean reference colourfulness."""
    summary = {"num_images": len(scores)}
    for key in MEAN_KEYS + (["psnr_best_of_n"] if with_best_of_n else []):
        summary[key] = sum(getattr(s, key) for s in scores) / len(scores)
    reference = summary["colorfulness_reference"]
    summary["colorfulness_ratio"] = summary["colorfulness"] / reference if reference else None
    return summary

class SetScores:
    """Scores of a whole set of colorizations against the real photos, beside the per-photo ones:

    - ``jsd``: Jensen-Shannon divergence of the ab histograms of all colorizations vs all real photos
      (``per_class`` too, when photos have classes); the gray input's is ``gray_jsd``.
    - ``chroma_accuracy``: a `ChromaClassifier` fitted on reference photos names the class of the first
      colorization of each photo; ``chroma_accuracy_real`` / ``_gray`` for the real photos and the gray input,
      and ``chroma_accuracy_ratio`` = colorized / real; ``chroma_confusion`` / ``chroma_confusion_real``: how
      often each class was named as each other ({true: {named: photos}}), to see which flowers it mistakes.
    - ``chroma_map_accuracy`` and ``chroma_probe_accuracy`` (``_real``, ``_gray``, ``_ratio``): the same from the
      classifier's CNN judge and its ImageNet probe, when it was fitted with them (the probe's inputs are computed
      only with ``probe=True``).
    - With several samples a photo, ``<judge>_all_samples`` (and its ``_ratio`` to the real photos'): each judge
      over every sample, not only the first; ``<judge>_per_sample``: its accuracy on sample k of every photo, for
      each k (how each entry of a ``sample_spread`` fares).
    - ``kid``: KID between the first colorizations and the real photos in `ImageNetFeatures` space.
    """

    def __init__(self, kid: bool = True, probe: bool = False):
        self.histograms = {}  # (kind, group) -> summed ab histogram; kind in colorized / real / gray
        self.groups = []
        # what each judge reads of the first colorization, the real photo and the gray input: INPUTS -> kind -> list
        self.inputs = {name: {"colorized": [], "real": [], "gray": []} for name in ("chroma", "maps", "probe")}
        # every colorization, when several: what each judge reads, the photo's group, the sample's position
        self.all_samples = {"chroma": [], "maps": [], "probe": [], "groups": [], "positions": []}
        self.kid, self.probe = kid, probe
        self.features = ImageNetFeatures() if kid or probe else None
        self.kid_features = {"colorized": [], "real": []}

    def add(self, samples: torch.Tensor, truth: torch.Tensor, group: str | None):
        full = {"colorized": samples, "real": truth, "gray": rgb_to_gray(truth)}
        small = {kind: shrink(images) for kind, images in full.items()}
        for kind, images in small.items():
            for key in ((kind, None), (kind, group)) if group is not None else ((kind, None),):
                self.histograms[key] = self.histograms.get(key, 0) + ab_histogram(images).mean(dim=0)
        for kind in ("real", "gray"):
            for name, value in self.judge_inputs(small[kind], full[kind]).items():
                self.inputs[name][kind].append(value)
        for name, value in self.judge_inputs(small["colorized"], samples).items():  # every sample read once
            self.inputs[name]["colorized"].append(value[:1])
            if len(samples) > 1:
                self.all_samples[name].append(value)
        self.groups.append(group)
        if len(samples) > 1:
            self.all_samples["groups"] += [group] * len(samples)
            self.all_samples["positions"] += range(len(samples))
        if self.kid:
            self.kid_features["colorized"].append(self.features(small["colorized"][:1]))
            self.kid_features["real"].append(self.features(small["real"]))

    def judge_inputs(self, small: torch.Tensor, full: torch.Tensor) -> dict:
        """What each judge reads of images shrunk to `SET_SCORE_SIZE` (``small``) and the same at full size
        (``full``): {inputs name: (N, ...)}."""
        inputs = {"chroma": chroma_features(small), "maps": chroma_map(small)}
        if self.probe:
            inputs["probe"] = self.features(chroma_picture(full))
        return inputs

    def jsd(self, kind: str, group: str | None = None) -> float:
        real = self.histograms[("real", group)]
        other = self.histograms[(kind, group)]
        return jensen_shannon(other / other.sum(), real / real.sum())

    def judges(self, classifier: ChromaClassifier) -> list[tuple]:
        """(metric name, judge, inputs name) of each judge ``classifier`` holds whose inputs were computed."""
        found = [("chroma_accuracy", classifier, "chroma"), ("chroma_map_accuracy", classifier.map_classifier, "maps"),
                 ("chroma_probe_accuracy", classifier.probe_classifier, "probe")]
        return [(name, judge, inputs) for name, judge, inputs in found
                if judge is not None and self.inputs[inputs]["real"]]

    def summary(self, classifier: ChromaClassifier | None) -> dict:
        result = {"jsd": self.jsd("colorized"), "gray_jsd": self.jsd("gray")}
        groups = sorted({g for g in self.groups if g is not None})
        if groups:
            result["per_class_jsd"] = {g: self.jsd("colorized", g) for g in groups}
            result["mean_class_jsd"] = sum(result["per_class_jsd"].values()) / len(groups)
            result["mean_class_gray_jsd"] = sum(self.jsd("gray", g) for g in groups) / len(groups)
        if classifier is not None and all(g in classifier.classes for g in self.groups):
            result.update(self.judge_accuracies(classifier))
        if self.kid and len(self.groups) >= 2:
            kid, kid_std = kernel_inception_distance(
                torch.cat(self.kid_features["real"]), torch.cat(self.kid_features["colorized"])
            )
            result.update(kid=kid, kid_std=kid_std)
        return result

    def judge_accuracies(self, classifier: ChromaClassifier) -> dict:
        """Each judge's accuracy on the first colorizations, the real photos and the gray input, its ratio, over
        all samples and per sample position when photos have several, and the histogram judge's confusions."""
        labels = torch.tensor([classifier.classes.index(g) for g in self.groups])
        all_labels = torch.tensor([classifier.classes.index(g) for g in self.all_samples["groups"]])
        positions = torch.tensor(self.all_samples["positions"], dtype=torch.long)
        result = {}
        for name, judge, inputs in self.judges(classifier):
            for kind in ("colorized", "real", "gray"):
                predicted = judge.predict(torch.cat(self.inputs[inputs][kind]))
                result[name if kind == "colorized" else f"{name}_{kind}"] = (predicted == labels).float().mean().item()
                if name == "chroma_accuracy" and kind != "gray":
                    confusion = "chroma_confusion" if kind == "colorized" else "chroma_confusion_real"
                    result[confusion] = confusion_counts(classifier.classes, labels, predicted)
            real = result[f"{name}_real"]
            result[f"{name}_ratio"] = result[name] / real if real else None
            if self.all_samples["groups"]:
                right = (judge.predict(torch.cat(self.all_samples[inputs])) == all_labels).float()
                accuracy = right.mean().item()
                result[f"{name}_all_samples"] = accuracy
                result[f"{name}_all_samples_ratio"] = accuracy / real if real else None
                result[f"{name}_per_sample"] = [right[positions == k].mean().item()
                                                for k in range(int(positions.max()) + 1)]
        return result


@dataclass
class ScoredPhotos:
    """What `colorize_and_score` returns.

    - ``scores``: one `ImageScores` per photo colorized, in order (``file``: the photo's path, or its position
      for an image; with several samples, their means and the best PSNR).
    - ``summary``: the means over the photos (`summarize`: ``num_images``, ``psnr``, ``ssim``, ``auc``,
      ``colorfulness``, ``colorfulness_reference``, ``colorfulness_ratio``, the ``gray_*`` baseline, and
      ``psnr_best_of_n`` with several samples), the set scores (`SetScores.summary`: ``jsd``, ``gray_jsd``, and
      per class, the chroma judges, ``kid``), ``per_class`` means when photos have groups, and how the photos
      were colorized: ``guidance_scale``, ``saturation``, ``strength``, ``working_size`` (the values used, the
      model's own where None was given), ``seconds_per_image`` (pipeline time only), ``num_inference_steps``,
      ``scheduler``, ``num_samples``, ``seed``.
    - ``rows``: gray input | sample(s) | truth, one row of PIL images per photo asked for in ``shown``;
      ``grid`` pastes them into one picture.
    - ``strip``: with ``return_strip``, the denoising strip of the first photo's first sample (None otherwise).
    - ``skipped``: the files that could not be read, ``{"file": path, "error": "Type: message"}``.
    """

    scores: list[ImageScores]
    summary: dict
    rows: list[list[PIL.Image.Image]] = field(default_factory=list)
    strip: PIL.Image.Image | None = None
    skipped: list[dict] = field(default_factory=list)

    @property
    def grid(self) -> PIL.Image.Image | None:
        """The ``rows`` as one picture (`make_grid`), or None when no photo was shown."""
        return make_grid(self.rows) if self.rows else None


def colorize_and_score(
    pipeline,
    photos: Sequence[PIL.Image.Image | str | Path],
    groups: Sequence[str | None] | None = None,
    *,
    num_inference_steps: int | None = None,
    seed: int = 0,
    num_samples: int = 1,
    batch_size: int | None = None,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    saturation: float | None = None,
    strength: float | None = None,
    working_size: int | None = None,
    sample_spread: list | None = None,
    chroma_sharpening: float | None = None,
    detail_transfer: float | None = None,
    kid: bool = True,
    classifier: ChromaClassifier | None = None,
    shown: Collection[int] = (),
    return_strip: bool = False,
    show_progress: bool = False,
) -> ScoredPhotos:
    """Colorize each colour photo from its gray version, at its own full resolution, and score the colorizations
    against it: the one scoring of `colorize evaluate` and of validation during training.

    Args:
        pipeline: a `ColorizationPipeline`.
        photos: the true-colour photos: PIL images, or paths of image files (read one batch at a time; a file
            that cannot be read is reported, listed in ``skipped`` and left out).
        groups: each photo's class (e.g. its folder), for the per-class means, per-class JSD and the chroma
            judges; None: no classes.
        num_inference_steps, guidance_scale, saturation, strength, working_size, sample_spread, chroma_sharpening,
        detail_transfer: the pipeline's call arguments (None: the model's calibrated value).
        seed: sample k of every photo is drawn from ``seed + k`` (`colorize.seeding.sample_generators`), as in
            ``colorize photo.jpg --seed S`` and ``pipe(photo, generator=torch.Generator().manual_seed(seed))``.
        num_samples: colorizations per photo (``num_images_per_prompt``); adds ``psnr_best_of_n``.
        batch_size: photos per pipeline call; None: all in one call. Scores do not depend on it.
        kid: also compute KID (runs an ImageNet network over the photos).
        classifier: a fitted `ChromaClassifier` (`colorize.evaluation.evaluate.fit_chroma_classifier`) whose
            judges name each photo's group from its colours (``chroma_accuracy`` ...); None: no such scores.
        shown: positions in ``photos`` whose gray | sample(s) | truth row is returned in ``rows``.
        return_strip: also return the denoising strip of the first photo colorized (its first sample).
        show_progress: a progress bar over the photos.

    Returns:
        `ScoredPhotos`: ``scores`` (per photo), ``summary`` (the dict of means, set scores and settings),
        ``rows`` / ``grid``, ``strip``, ``skipped``.

    Raises:
        ValueError: when no photo could be colorized.

    Training validation, for instance::

        scored = colorize_and_score(pipeline, images, num_inference_steps=13, seed=0, kid=False,
                                    shown=range(4), return_strip=True)
        scored.summary["psnr"], scored.grid, scored.strip
    """
    groups = list(groups) if groups is not None else [None] * len(photos)
    batch_size = batch_size or max(1, len(photos))
    scores, rows, skipped = [], [], []
    set_scores = SetScores(kid=kid, probe=classifier is not None and classifier.probe_classifier is not None)
    strip, seconds = None, 0.0
    progress = tqdm(total=len(photos), desc="Evaluating", unit="image", disable=not show_progress)
    for start in range(0, len(photos), batch_size):
        positions = range(start, min(start + batch_size, len(photos)))
        batch = [(position, image) for position in positions
                 if (image := read_photo(photos[position], skipped)) is not None]
        if batch:
            wants_strip = return_strip and strip is None
            started = time.perf_counter()
            output = pipeline(
                [image for _, image in batch], num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                generator=sample_generators(seed, len(batch), num_samples), num_images_per_prompt=num_samples,
                output_type="pt", saturation=saturation, strength=strength, working_size=working_size,
                sample_spread=sample_spread, chroma_sharpening=chroma_sharpening, detail_transfer=detail_transfer,
                return_intermediates=wants_strip, num_intermediates=STRIP_FRAMES if wants_strip else None,
            )
            seconds += time.perf_counter() - started
            if wants_strip:
                strip = denoising_strip(output.intermediates)
            for index, (position, image) in enumerate(batch):
                samples = torch.stack([output.images[index * num_samples + k] for k in range(num_samples)]).cpu()
                truth = pil_to_tensor(image)[None]
                name = str(photos[position]) if isinstance(photos[position], (str, Path)) else str(position)
                scores.append(ImageScores(file=name, group=groups[position], **score(samples, truth)))
                set_scores.add(samples, truth, groups[position])
                if position in shown:
                    rows.append([gray_picture(image), *map(tensor_to_pil, samples), image])
        progress.update(len(positions))
    progress.close()
    if not scores:
        raise ValueError(f"No photo could be colorized ({len(skipped)} of {len(photos)} unreadable).")

    summary = summarize(scores, with_best_of_n=num_samples > 1)
    summary.update(set_scores.summary(classifier))
    summary.update(
        guidance_scale=guidance_scale,
        saturation=pipeline.default_saturation(saturation),
        strength=pipeline.default_strength(strength),
        working_size=pipeline.default_working_size(working_size),
        chroma_sharpening=pipeline.default_chroma_sharpening(chroma_sharpening),
        detail_transfer=pipeline.default_detail_transfer(detail_transfer),
        seconds_per_image=seconds / len(scores),
        num_inference_steps=pipeline.default_num_inference_steps(num_inference_steps),
        scheduler=scheduler_name(pipeline.scheduler),
        num_samples=num_samples,
        sample_spread=[list(pair) for pair in pipeline.default_sample_spread(sample_spread)[:num_samples]],
        seed=seed,
    )
    classes = sorted({s.group for s in scores if s.group is not None})
    if classes:
        summary["per_class"] = {group: summarize([s for s in scores if s.group == group], num_samples > 1)
                                for group in classes}
    return ScoredPhotos(scores, summary, rows, strip, skipped)


def read_photo(photo: PIL.Image.Image | str | Path, skipped: list[dict]) -> PIL.Image.Image | None:
    """``photo`` itself, or the image file it names; None (the file reported and added to ``skipped``) when the
    file cannot be read."""
    if isinstance(photo, PIL.Image.Image):
        return photo
    try:
        return open_image(photo)
    except Exception as error:  # noqa: BLE001 - PIL raises many types for unreadable files; never fatal
        skipped.append({"file": str(photo), "error": f"{type(error).__name__}: {error}"})
        tqdm.write(f"skipped {photo}: {type(error).__name__}: {error}")
        return None
