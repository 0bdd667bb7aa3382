"""The pipeline's sampling settings, each checked in one place: the pipeline's call and config, the commands'
flags (`argument_type`), `colorize publish` and the training scripts all use these checks."""

import argparse
import math
from collections.abc import Callable


def check_working_size(working_size) -> int | None:
    """``working_size`` as an int (None stays None); ValueError when it is not a whole number of pixels >= 8."""
    if working_size is None:
        return None
    try:
        number = float(working_size)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(working_size, (bool, str)) or not (8 <= number < math.inf) or number != int(number):
        raise ValueError(f"working_size must be a whole number of pixels >= 8, got {working_size!r}.")
    return int(number)


def check_saturation(saturation) -> float:
    """``saturation`` as a float; ValueError when it is negative or not a finite number."""
    saturation = float(saturation)
    if not (0 <= saturation < math.inf):
        raise ValueError(f"saturation must be a finite number >= 0, got {saturation}.")
    return saturation


def check_strength(strength) -> float:
    """``strength`` as a float; ValueError when it is not a number from 0 to 1."""
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}.")
    return strength


def check_guidance_scale(guidance_scale) -> float:
    """``guidance_scale`` as a float; ValueError when it is negative or not a finite number."""
    guidance_scale = float(guidance_scale)
    if not (0 <= guidance_scale < math.inf):
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}.")
    return guidance_scale


def check_distilled_guidance_scale(scale) -> float | None:
    """A pipeline's ``distilled_guidance_scale`` as a float (None stays None); ValueError unless it is a finite
    number > 0."""
    if scale is None:
        return None
    scale = float(scale)
    if not (0 < scale < math.inf):
        raise ValueError(f"distilled_guidance_scale must be a finite number > 0, got {scale}.")
    return scale


def argument_type(check: Callable, parse: Callable = float) -> Callable:
    """An argparse ``type`` from a check above: the text parsed by ``parse`` then checked, a failure being
    argparse's one-line error."""

    name = check.__name__.removeprefix("check_")

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got '{text}'") from None
        try:
            return check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None

    convert.__name__ = name  # argparse names the type in its messages
    return convert
