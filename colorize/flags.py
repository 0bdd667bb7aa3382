"""Both spellings of multi-word flags, for every command-line parser of the project (the `colorize` commands,
the training scripts, main.py): ``--num-inference-steps`` or ``--num_inference_steps``, ``--learning-rate``
or ``--learning_rate``. `respell_flags` rewrites each to the spelling the parser knows, so ``--help`` lists
one spelling."""


def respell_flags(parser, argv: list[str]) -> list[str]:
    """``argv`` with each ``--flag`` (or ``--flag=value``) the parser does not know, but knows with hyphens and
    underscores swapped, respelled the parser's way. Values and known or unknown flags pass unchanged."""
    known = set(parser._option_string_actions)

    def respelled(item: str) -> str:
        flag, equals, value = item.partition("=")
        if not flag.startswith("--") or flag in known:
            return item
        stem = flag[2:]
        candidates = [stem.replace("-", "_"), stem.replace("_", "-")]
        if stem.startswith(("no-", "no_")):  # argparse's --no-<flag> of a BooleanOptionalAction
            candidates += ["no-" + stem[3:].replace("-", "_"), "no-" + stem[3:].replace("_", "-")]
        name = next((f"--{c}" for c in candidates if f"--{c}" in known), flag)
        return name + equals + value

    return [respelled(item) for item in argv]
