"""The one renderer of a metrics dict (`colorize evaluate`'s ``metrics.json``, or the summary of a training
validation, both made by `colorize.evaluation.scoring.colorize_and_score`): `colorize evaluate`'s report.md
(`evaluation_report`), the model card's results (`card_results`), and the one-line summary that `colorize
evaluate` prints and training validation logs (`summary_line`). Keys a summary lacks are left out."""


def count_of_photos(count: int) -> str:
    return f"{count} photo" if count == 1 else f"{count} photos"


def describe_run(metrics: dict) -> str:
    """One sentence: how the scores were made (sampler, steps, guidance, saturation, strength, working size, seed,
    samples, photos, time)."""
    parts = [count_of_photos(metrics["num_images"])]
    if metrics.get("scheduler"):
        parts.append(f"{metrics['scheduler']} with {metrics['num_inference_steps']} steps")
    if metrics.get("guidance_scale") is not None:
        parts.append(f"guidance scale {metrics['guidance_scale']:g}")
    if metrics.get("saturation") not in (None, 1.0):
        parts.append(f"saturation {metrics['saturation']:g}")
    if metrics.get("strength") not in (None, 1.0):
        parts.append(f"prior strength {metrics['strength']:g}")
    if metrics.get("working_size") is not None:
        parts.append(f"working size {metrics['working_size']} px")
    if metrics.get("seed") is not None:
        parts.append(f"seed {metrics['seed']}")
    if metrics.get("num_samples", 1) > 1:
        parts.append(f"{metrics['num_samples']} samples per photo")
    if metrics.get("seconds_per_image") is not None:
        parts.append(f"{metrics['seconds_per_image']:.2f} s per photo")
    return ", ".join(parts) + "."


# The chroma judges' metric keys and names, as `colorize.evaluation.scoring.SetScores` reports them.
JUDGES = (("chroma_accuracy", "chroma-only classifier"), ("chroma_map_accuracy", "chroma-map CNN"),
          ("chroma_probe_accuracy", "chroma ImageNet probe"))


def metrics_tables(metrics: dict) -> str:
    """The colorized-vs-gray-input table, then the per-class one when there are classes (markdown)."""
    rows = [
        ("PSNR (dB)", f"{metrics['psnr']:.2f}", f"{metrics['gray_psnr']:.2f}"),
        ("SSIM", f"{metrics['ssim']:.3f}", f"{metrics['gray_ssim']:.3f}"),
        ("AuC (ab error ≤ 150)", f"{metrics['auc']:.3f}", f"{metrics['gray_auc']:.3f}"),
        (f"colourfulness (real photos {metrics['colorfulness_reference']:.1f})", f"{metrics['colorfulness']:.1f}", "0.0"),
        ("colourfulness ratio", f"{metrics['colorfulness_ratio']:.2f}", "0.00"),
    ]
    if metrics.get("psnr_best_of_n") is not None:
        rows.append((f"PSNR (dB), best of {metrics['num_samples']}", f"{metrics['psnr_best_of_n']:.2f}", ""))
    if metrics.get("jsd") is not None:
        rows.append(("ab-histogram JSD to the real photos", f"{metrics['jsd']:.3f}", f"{metrics['gray_jsd']:.3f}"))
    if metrics.get("mean_class_jsd") is not None:
        rows.append(("ab-histogram JSD per class, mean", f"{metrics['mean_class_jsd']:.3f}",
                     f"{metrics['mean_class_gray_jsd']:.3f}"))
    for key, judge in JUDGES:
        if metrics.get(key) is not None:
            rows.append((f"{judge} accuracy (real photos {metrics[f'{key}_real']:.2f})",
                         f"{metrics[key]:.2f}", f"{metrics[f'{key}_gray']:.2f}"))
    for key, judge in JUDGES:
        if metrics.get(f"{key}_all_samples") is not None:
            rows.append((f"{judge} accuracy over all {metrics['num_samples']} samples",
                         f"{metrics[f'{key}_all_samples']:.2f}", ""))
        if metrics.get(f"{key}_per_sample") is not None:
            positions = " / ".join(str(k + 1) for k in range(len(metrics[f"{key}_per_sample"])))
            rows.append((f"{judge} accuracy per sample ({positions})",
                         " / ".join(f"{accuracy:.2f}" for accuracy in metrics[f"{key}_per_sample"]), ""))
    if metrics.get("kid") is not None:
        rows.append(("KID, EfficientNet-Lite0 features (not comparable to Inception KID)",
                     f"{metrics['kid']:.4f} ± {metrics['kid_std']:.4f}", ""))
    lines = ["| metric | colorized | gray input |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if metrics.get("per_class"):
        has_jsd = bool(metrics.get("per_class_jsd"))
        lines += ["", "| class | photos | PSNR | gray PSNR | AuC | gray AuC | colourfulness ratio |"
                  + (" ab JSD |" if has_jsd else ""), "|---|---|---|---|---|---|---|" + ("---|" if has_jsd else "")]
        for name, m in metrics["per_class"].items():
            jsd = f" {metrics['per_class_jsd'][name]:.3f} |" if has_jsd else ""
            lines.append(f"| {name} | {m['num_images']} | {m['psnr']:.2f} | {m['gray_psnr']:.2f} | {m['auc']:.3f} "
                         f"| {m['gray_auc']:.3f} | {m['colorfulness_ratio']:.2f} |{jsd}")
    return "\n".join(lines)


def summary_line(metrics: dict) -> str:
    """The scores in one line: PSNR, SSIM, AuC, colourfulness ratio and JSD against the gray input's, the chroma
    judges' accuracies and the time per photo, when the summary has them."""
    parts = [f"PSNR {metrics['psnr']:.2f} dB (gray {metrics['gray_psnr']:.2f})", f"SSIM {metrics['ssim']:.3f}",
             f"AuC {metrics['auc']:.3f} (gray {metrics['gray_auc']:.3f})"]
    if metrics.get("colorfulness_ratio") is not None:
        parts.append(f"colourfulness ratio {metrics['colorfulness_ratio']:.2f}")
    if metrics.get("jsd") is not None:
        parts.append(f"ab JSD {metrics['jsd']:.3f} (gray {metrics['gray_jsd']:.3f})")
    if metrics.get("chroma_accuracy") is not None:
        parts.append(f"chroma accuracy {metrics['chroma_accuracy']:.2f} (real {metrics['chroma_accuracy_real']:.2f})")
    if metrics.get("chroma_map_accuracy") is not None:
        parts.append(f"CNN {metrics['chroma_map_accuracy']:.2f} (real {metrics['chroma_map_accuracy_real']:.2f})")
    if metrics.get("chroma_probe_accuracy") is not None:
        parts.append(f"probe {metrics['chroma_probe_accuracy']:.2f} (real {metrics['chroma_probe_accuracy_real']:.2f})")
    photos = count_of_photos(metrics["num_images"]) + (f" ({metrics['num_skipped']} skipped)" if "num_skipped" in metrics else "")
    speed = f"; {metrics['seconds_per_image']:.2f} s per photo" if metrics.get("seconds_per_image") is not None else ""
    return f"{photos}: " + ", ".join(parts) + speed


def evaluation_report(metrics: dict, has_pictures: bool) -> str:
    """`colorize evaluate`'s report.md: how the scores were made, the model against the gray input, per class,
    the skipped files and (``has_pictures``) the sample grid and denoising strip."""
    lines = [
        "# Colorization evaluation",
        "",
        f"Model `{metrics['model']}`: {describe_run(metrics)} {metrics['num_skipped']} photos skipped.",
        "",
        metrics_tables(metrics),
    ]
    if metrics["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- `{s['file']}`: {s['error']}" for s in metrics["skipped"]]
    if has_pictures:
        lines += ["", "## Samples", "", "Gray input | colorized sample(s) | truth:", "", "![samples](samples.png)",
                  "", "Denoising, noisiest first:", "", "![denoising](denoising.png)"]
    return "\n".join(lines) + "\n"


def card_results(metrics: dict) -> str:
    """The model card's results section: the `colorize evaluate` tables, model against the gray input."""
    return ("## Results\n\n`colorize evaluate` on held-out photos at full resolution: "
            f"{describe_run(metrics)}\n\n" + metrics_tables(metrics))
