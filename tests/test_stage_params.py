"""One parameter convention: each `colorize` sub-command reads its section of params.yaml with --params."""

import pytest
import yaml

import argparse

from colorize.cli.prepare import build_parser as prepare_parser
from colorize.cli.stage_params import expand_params, parse_stage_args, section_flags


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "source": "images",
        "prepare": {"validation-fraction": 0.2, "seed": 7, "min-size": 16},
        "train": {"max-train-steps": 10, "use-ema": True, "center-crop": False, "snr-gamma": None},
    }))
    return path


def test_a_section_becomes_flags_true_bare_false_and_null_left_out(params_file):
    assert section_flags(params_file, "train") == ["--max-train-steps", "10", "--use-ema"]
    assert section_flags(params_file, "evaluate") == []  # no such section: no flags


def test_params_flags_come_first_so_the_command_line_wins(params_file):
    argv = expand_params(["images", "--output-dir", "out", "--params", str(params_file), "--seed", "3"], "prepare")
    args = prepare_parser().parse_args(argv)
    assert (args.validation_fraction, args.min_size, args.seed) == (0.2, 16, 3)


def test_a_misspelt_key_is_the_commands_own_one_line_error(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"prepare": {"seeed": 1}}))
    with pytest.raises(SystemExit):
        parse_stage_args(prepare_parser(), ["images", "--output-dir", "out", "--params", str(path)], "prepare")
    assert "unrecognized arguments: --seeed" in capsys.readouterr().err


def test_a_missing_params_file_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_stage_args(prepare_parser(), ["images", "--params", str(tmp_path / "nope.yaml")], "prepare")
    assert "--params" in capsys.readouterr().err


def test_multi_word_flags_take_either_spelling_and_help_shows_one():
    from colorize.cli.photos import build_parser as colorize_parser
    from colorize.flags import respell_flags

    parser = argparse.ArgumentParser()
    parser.add_argument("--num-inference-steps", type=int)
    parser.add_argument("--learning_rate", type=float)
    parser.add_argument("--image_encoder", action=argparse.BooleanOptionalAction)
    argv = ["--num_inference_steps", "5", "--learning-rate=2e-4", "--no-image-encoder", "x_y-z", "--unknown_flag"]
    assert respell_flags(parser, argv) == [
        "--num-inference-steps", "5", "--learning_rate=2e-4", "--no-image_encoder", "x_y-z", "--unknown_flag"]
    args = parse_stage_args(prepare_parser(), ["images", "--output_dir", "o", "--validation_fraction", "0.2"], "prepare")
    assert args.validation_fraction == 0.2
    help_text = colorize_parser().format_help()
    assert "--num-inference-steps" in help_text and "--num_inference_steps" not in help_text
