"""The ``colorize`` command: ``colorize PHOTOS...`` colorizes photos (`photos`), ``colorize video IN -o OUT`` a clip
(`video`, scored by ``evaluate-video``); ``colorize prepare | train | train-prior | evaluate | publish | demo`` are the
other sub-commands, one module each (both trainers in `train`); prepare to publish are the stages of the MLOps
pipeline (read with ``--params``: `stage_params`). Options shared by every command that runs a pipeline: `options`. Every command fails the same way (`errors.CommandError`): one line, exit status 2."""

import sys

from . import demo, evaluate, evaluate_video, photos, prepare, publish, train, video
from .errors import CommandError

# Sub-commands by name; each module has its own ``build_parser`` and ``main(argv)``.
COMMANDS = {"prepare": prepare.main, "train": train.main, "train-prior": train.main_prior, "evaluate": evaluate.main,
            "publish": publish.main, "demo": demo.main, "video": video.main, "evaluate-video": evaluate_video.main}


def main(argv=None) -> int:
    """Run ``colorize ARGV...``; returns the exit status. A `CommandError` is printed as ``colorize <command>:
    <message>`` on one line of stderr, with exit status 2; Ctrl-C as ``colorize <command>: interrupted ...``, with
    exit status 130 (as a shell expects)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    name = argv[0] if argv and argv[0] in COMMANDS else None
    prog = "colorize" if name is None else f"colorize {name}"
    try:
        return COMMANDS[name](argv[1:]) if name else photos.main(argv)
    except CommandError as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"{prog}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"{prog}: interrupted" + (f" {interrupt}" if str(interrupt) else ""), file=sys.stderr)
        return 130
