"""The one way a `colorize` command fails: it raises `CommandError` with a one-line message, and
`colorize.cli.main` prints ``colorize <command>: <message>`` on stderr and exits with status 2 (argparse's
own usage errors exit 2 too). Per-photo failures in a batch are not command errors: they are reported, and
the rest of the batch is done."""

from contextlib import contextmanager


class CommandError(Exception):
    """A mistake that stops a command: a missing input, a model that cannot load, a folder that is not empty."""


@contextmanager
def command_errors(*kinds: type[Exception]):
    """Inside the block, an exception of one of ``kinds`` (those a library call raises for bad input, e.g.
    OSError and ValueError) becomes a `CommandError` naming its type: ``ValueError: <message>``."""
    try:
        yield
    except kinds as error:
        raise CommandError(f"{type(error).__name__}: {error}") from error
