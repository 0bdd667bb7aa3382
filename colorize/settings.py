"""The pipeline's sampling settings, each checked in one place: the pipeline's call and config, the commands'
flags (`argument_type`), `colorize publish` and the training scripts all use these checks."""

import argparse
import math
from collections.abc import Callable


def as_number(value) -> float:
    """``value`` as a float, NaN when it is not a number (so that one range check refuses both)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_whole_number(value, name: str, minimum: int, unit: str = "") -> int | None:
    """``value`` as an int (None stays None); ValueError naming ``name`` when it is not a whole number >= ``minimum``."""
    if value is None:
        return None
    number = as_number(value)
    if isinstance(value, (bool, str)) or not (minimum <= number < math.inf) or number != int(number):
        raise ValueError(f"{name} must be a whole number{unit} >= {minimum}, got {value!r}.")
    return int(number)


def check_working_size(working_size) -> int | None:
    """``working_size`` as an int (None stays None); ValueError when it is not a whole number of pixels >= 8."""
    return check_whole_number(working_size, "working_size", 8, " of pixels")


def check_finite_non_negative(value, name: str) -> float:
    """``value`` as a float; ValueError naming ``name`` when it is negative or not a finite number."""
    value = float(value)
    if not (0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return value


def check_saturation(saturation) -> float:
    """``saturation`` as a float; ValueError when it is negative or not a finite number."""
    return check_finite_non_negative(saturation, "saturation")


def check_chroma_sharpening(amount) -> float:
    """``chroma_sharpening`` as a float; ValueError when it is negative or not a finite number."""
    return check_finite_non_negative(amount, "chroma_sharpening")


def check_detail_transfer(amount) -> float:
    """``detail_transfer`` as a float; ValueError when it is negative or not a finite number."""
    return check_finite_non_negative(amount, "detail_transfer")


def check_num_inference_steps(steps) -> int | None:
    """``num_inference_steps`` as an int (None stays None); ValueError when it is not a whole number >= 1."""
    return check_whole_number(steps, "num_inference_steps", 1)


def check_strength(strength) -> float:
    """``strength`` as a float; ValueError when it is not a number from 0 to 1."""
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}.")
    return strength


SAMPLE_STARTS = ("prior", "noise", "mean")


def check_sample_pair(pair) -> tuple[str | float, float]:
    """One (start, gain) pair of a ``sample_spread``, given as a "start:gain" text (the flag's form) or a 2-item
    sequence (a config's JSON list): ``start`` "prior", "noise", "mean" or a strength above 0 and at most 1 (a number,
    or its text, returned as a float), ``gain`` a chroma gain as `check_saturation` takes it. ValueError otherwise."""
    if isinstance(pair, str) and ":" in pair:
        start, gain = pair.split(":", 1)
    else:
        start, gain = pair if isinstance(pair, (list, tuple)) and len(pair) == 2 else (None, None)
    if start not in SAMPLE_STARTS:
        start = as_number(start)
        if not 0.0 < start <= 1.0:
            raise ValueError("sample_spread holds (start, gain) pairs with start 'prior', 'noise', 'mean' or a "
                             f"strength in (0, 1], got {pair!r}.")
    try:
        return start, check_saturation(gain)
    except (TypeError, ValueError):
        raise ValueError(f"sample_spread's gains must be finite numbers >= 0, got {pair!r}.") from None


def check_sample_spread(spread) -> list[tuple[str | float, float]] | None:
    """``sample_spread`` as a list of (start, gain) pairs (`check_sample_pair`; None stays None); ValueError for an
    empty list, a bad pair or a "mean" first (the first sample of a photo is drawn: a "mean" sample is the mean of
    its photo's drawn ones)."""
    if spread is None:
        return None
    pairs = [check_sample_pair(pair) for pair in spread]
    if not pairs:
        raise ValueError("sample_spread needs at least one (start, gain) pair.")
    if pairs[0][0] == "mean":
        raise ValueError("sample_spread's first pair must draw a sample ('prior', 'noise' or a strength): a 'mean' "
                         f"sample is the mean of its photo's drawn ones, got {spread[0]!r} first.")
    return pairs


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
