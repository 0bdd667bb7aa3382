"""`colorize demo`: serve the Gradio web demo (`colorize.demo`), on 127.0.0.1 unless ``--host`` says otherwise."""

import argparse
import importlib.util

from ..demo import build_demo, model_display_name
from ..flags import respell_flags
from .errors import CommandError
from .options import add_model_arguments, load_pipeline


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize demo",
        description="Start the Gradio web demo (needs the demo extra: pip install -e \".[demo]\").",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="Interface to listen on; 127.0.0.1 keeps it to this machine, 0.0.0.0 opens it to the network.")
    parser.add_argument("--port", type=int, default=7860, help="Port to listen on.")
    parser.add_argument("--max-upload-mb", type=float, default=20, help="Largest accepted upload, in MB.")
    return parser


def main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(respell_flags(parser, argv))
    if importlib.util.find_spec("gradio") is None:
        raise CommandError('Gradio is not installed; install the demo extra: pip install -e ".[demo]"')
    pipeline = load_pipeline(args)
    if args.working_size is not None:  # every colorization in the demo denoises at this size
        pipeline.register_to_config(working_size=args.working_size)
    demo = build_demo(pipeline, model_display_name(args.model), args.max_upload_mb, args.num_inference_steps,
                      args.guidance_scale, args.saturation, args.strength)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=int(args.max_upload_mb * 2**20), share=False)
    return 0
