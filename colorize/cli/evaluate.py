"""`colorize evaluate DATA --output-dir DIR`: score a model against the gray baseline on colour photos
(`colorize.evaluation.evaluate`) and print the scores in one line."""

import argparse
from pathlib import Path

from ..evaluation.evaluate import evaluate
from ..evaluation.report import summary_line
from ..settings import argument_type, check_chroma_sharpening, check_detail_transfer
from .errors import command_errors
from .options import add_model_arguments, add_sample_spread_argument, load_pipeline
from .stage_params import add_params_argument, parse_stage_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize evaluate",
        description="Turn each colour photo of DATA_DIR gray, colorize it at full resolution and score it against "
        "the original: PSNR, SSIM, AuC (ab error), colourfulness, and the same for the gray input. Writes "
        "OUT/metrics.json, OUT/per_image.csv and OUT/report.md with sample pictures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("data_dir", help="A folder of colour photos (class sub-folders allowed) or a text file of paths.")
    parser.add_argument("--output-dir", required=True, help="Where metrics.json and report.md are written.")
    add_model_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="Score only the first K photos (sorted by path).")
    parser.add_argument("--num-samples", type=int, default=1, help="Colorizations per photo (adds psnr_best_of_n).")
    add_sample_spread_argument(parser)
    parser.add_argument(
        "--chroma-sharpening", type=argument_type(check_chroma_sharpening), default=None,
        help="Unsharp mask on the sampled chroma (its ab plus this amount times its difference from a blur of it), "
        "to measure before storing it with `colorize publish --chroma-sharpening`. Default: the model's own.",
    )
    parser.add_argument(
        "--detail-transfer", type=argument_type(check_detail_transfer), default=None,
        help="Colour detail from the lightness (the photo's fine lightness detail times the local slope of the chroma "
        "on the lightness, times this amount), to measure before storing it with `colorize publish "
        "--detail-transfer`. Default: the model's own.",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="Photos per pipeline call.")
    parser.add_argument(
        "--reference-data", default=None,
        help="Real photos in class sub-folders (or a list file), e.g. the training split: a chroma-only classifier "
        "is fitted on them and scores whether the colorizations' colours name the right class (chroma_accuracy: "
        "a logistic regression on ab histograms; chroma_map_accuracy: a small CNN on the ab map; chroma_probe_accuracy, "
        "the strictest: a linear probe on ImageNet features of the chroma shown on a flat gray).",
    )
    parser.add_argument("--no-kid", dest="kid", action="store_false", help="Skip KID (it runs an extra network).")
    add_params_argument(parser, "evaluate")
    return parser


def main(argv) -> int:
    args = parse_stage_args(build_parser(), argv, "evaluate")
    pipeline = load_pipeline(args)
    with command_errors(FileNotFoundError, ValueError):
        metrics = evaluate(
            pipeline, args.data_dir, args.output_dir, model_name=args.model,
            num_inference_steps=args.num_inference_steps, seed=args.seed, limit=args.limit,
            num_samples=args.num_samples, batch_size=args.batch_size, guidance_scale=args.guidance_scale,
            reference_data=args.reference_data, kid=args.kid, saturation=args.saturation, strength=args.strength,
            working_size=args.working_size, sample_spread=args.sample_spread, chroma_sharpening=args.chroma_sharpening,
            detail_transfer=args.detail_transfer,
        )
    print(f"{summary_line(metrics)} -> {Path(args.output_dir) / 'report.md'}")
    return 0
