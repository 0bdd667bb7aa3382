"""``--params params.yaml``: the one way a pipeline stage (`colorize prepare`, `train`, `evaluate`, `publish`)
reads its parameters.

The file's section named after the stage (``prepare``, ``train``, ``evaluate``, ``publish``) holds that
command's options, each written as its flag without the leading dashes (``max-train-steps: 7000``,
``num-inference-steps: 25``). They are turned into flags placed before the command line, so a flag given
on the command line wins, and the command's own parser checks them: a misspelt key is its one-line
"unrecognized arguments" error. ``true`` gives the bare flag (``use-ema: true`` -> ``--use-ema``); ``false``
and ``null`` give nothing; a list gives the flag followed by each item. Flags of either spelling are accepted
(`colorize.flags.respell_flags`).
"""

from pathlib import Path

import yaml

from ..flags import respell_flags


def read_section(params_file: str | Path, section: str) -> dict:
    """The ``section`` mapping of a params.yaml (empty when the file has no such section)."""
    params = yaml.safe_load(Path(params_file).read_text()) or {}
    values = params.get(section) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{params_file}: section '{section}' must be a mapping of option: value")
    return values


def section_flags(params_file: str | Path, section: str) -> list[str]:
    """The ``section`` of ``params_file`` as command-line flags (see the module docstring)."""
    flags = []
    for key, value in read_section(params_file, section).items():
        flag = f"--{key}"
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def expand_params(argv: list[str], section: str) -> list[str]:
    """``argv`` with ``--params FILE`` (or ``--params=FILE``) replaced by FILE's ``section`` as flags, put first."""
    argv = list(argv)
    for index, item in enumerate(argv):
        if item == "--params" and index + 1 < len(argv):
            params_file = argv[index + 1]
            rest = argv[:index] + argv[index + 2 :]
            return section_flags(params_file, section) + rest
        if item.startswith("--params="):
            return section_flags(item.split("=", 1)[1], section) + argv[:index] + argv[index + 1 :]
    return argv


def add_params_argument(parser, section: str):
    """``--params FILE`` in ``parser``'s help: read by `parse_stage_args`, never by the parser itself."""
    parser.add_argument(
        "--params", metavar="FILE",
        help=f"A pipeline params.yaml whose `{section}` section gives this command's options, each written as its "
        "flag without dashes (e.g. seed: 0); flags on the command line win.",
    )


def parse_stage_args(parser, argv, section: str):
    """``parser.parse_args`` of ``argv`` with ``--params FILE`` expanded (`expand_params`); an unreadable FILE is
    the parser's one-line error."""
    try:
        return parser.parse_args(respell_flags(parser, expand_params(argv, section)))
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(f"--params: {error}")
