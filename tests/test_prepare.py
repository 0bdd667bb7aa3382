import csv
import hashlib
import io
import json

from conftest import colour_image, write_image_folder

from colorize.cli import main
from colorize.prepare import prepare


def rows(folder):
    with (folder / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_checks_split_and_manifest_of_a_class_folder(tmp_path):
    source = write_image_folder(tmp_path / "photos", per_class=10)  # + one corrupt and one gray file
    (source / "red" / "copy.png").write_bytes((source / "red" / "3.png").read_bytes())
    colour_image(8, 8).save(source / "green" / "tiny.png")
    report = prepare(str(source), tmp_path / "data", validation_fraction=0.2, test_fraction=0.2, seed=1,
                     min_size=16, show_progress=False)

    assert report["dropped"] == {"undecodable": 1, "grayscale": 1, "duplicate": 1, "too small": 1}
    assert report["splits"] == {"train": 12, "validation": 4, "test": 4}
    assert report["per_class"] == {c: {"train": 6, "validation": 2, "test": 2} for c in ("green", "red")}
    manifest = rows(tmp_path / "data")
    assert len({row["file"] for row in manifest}) == 20
    for row in manifest:  # the hash is the file's, and each list holds exactly its split's files
        with open(row["file"], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == row["sha256"]
    for split in ("train", "validation", "test"):
        listed = (tmp_path / "data" / f"{split}.txt").read_text().split()
        assert listed == [row["file"] for row in manifest if row["split"] == split]
    text = (tmp_path / "data" / "data_report.md").read_text()
    assert "| red | 6 | 2 | 2 | 10 |" in text and "duplicate of" in text and "broken.jpg" in text


def test_the_split_depends_on_the_seed_only(tmp_path):
    source = write_image_folder(tmp_path / "photos", per_class=10, corrupt=False, gray=False)
    tests = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        prepare(str(source), tmp_path / name, seed=seed, show_progress=False)
        tests.append((tmp_path / name / "test.txt").read_text())
    assert tests[0] == tests[1] and tests[0] != tests[2]


def test_hub_dataset_bytes_become_files_and_cli_summary(tmp_path, monkeypatch, capsys):
    from datasets import Dataset, Features, Image

    def png_bytes(seed):
        buffer = io.BytesIO()
        colour_image(24, 24, seed=seed).save(buffer, format="PNG")
        return buffer.getvalue()

    local = Dataset.from_dict({"img": [{"bytes": png_bytes(i), "path": None} for i in range(6)]},
                              features=Features({"img": Image()}))
    monkeypatch.setattr("colorize.training.sources.load_dataset", lambda *args, **kwargs: local)
    code = main(["prepare", "someone/photos", "--image-column", "img", "--output-dir", str(tmp_path / "data"),
                 "--min-size", "16"])
    assert code == 0 and "6 of 6 images kept (4 train, 1 validation, 1 test)" in capsys.readouterr().out
    files = [row["file"] for row in rows(tmp_path / "data")]
    assert all((tmp_path / "data" / "images").resolve().as_posix() in f for f in files)
    report = json.loads((tmp_path / "data" / "data_report.json").read_text())
    assert report["source"] == "someone/photos" and report["dropped"] == {}


def test_unusable_source_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.jpg").write_bytes(b"")
    assert main(["prepare", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "data")]) == 2
    assert "colorize prepare:" in capsys.readouterr().err
