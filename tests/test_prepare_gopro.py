"""tools/prepare_gopro.py: GOPRO_Large scene layout -> numbered flat blur/sharp layout."""
import os
import subprocess
import sys

import pytest

from ppir.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import prepare_gopro  # noqa: E402


def make_tree(root, scenes):
    """scenes: {split: {scene: [file names]}}; sharp content differs from blur content."""
    for split, per_scene in scenes.items():
        for scene, names in per_scene.items():
            for sub in ("blur", "sharp", "blur_gamma"):
                os.makedirs(os.path.join(root, split, scene, sub), exist_ok=True)
            for name in names:
                for sub in ("blur", "sharp", "blur_gamma"):
                    with open(os.path.join(root, split, scene, sub, name), "w") as f:
                        f.write(f"{sub}:{scene}/{name}")
            with open(os.path.join(root, split, scene, "frames X offset 0.txt"), "w") as f:
                f.write("ignored")
    return root


TREE = {"train": {"GOPR0884_11_00": ["000002.png", "000001.png"],
                  "GOPR0372_07_00": ["000047.png", "000048.png", "000049.png"]},
        "test": {"GOPR0384_11_00": ["000001.png"]}}


def read(path):
    with open(path) as f:
        return f.read()


def test_flattens_with_sorted_numbering_and_names_file(tmp_path):
    """Pairs are numbered 1..N over sorted scenes then sorted files, with the same N in blur/
    and sharp/, blur_gamma ignored, and names.txt mapping N back to scene/file."""
    src = make_tree(str(tmp_path / "GOPRO_Large"), TREE)
    dst = str(tmp_path / "GOPRO_flat")
    assert prepare_gopro.main(["--src", src, "--dst", dst]) == 0
    train = os.path.join(dst, "train")
    assert sorted(os.listdir(os.path.join(train, "blur"))) == [f"{n}.png" for n in range(1, 6)]
    assert sorted(os.listdir(os.path.join(train, "sharp"))) == [f"{n}.png" for n in range(1, 6)]
    lines = read(os.path.join(train, "names.txt")).splitlines()
    assert lines[0] == "1.png\tGOPR0372_07_00/000047.png"
    assert lines[3] == "4.png\tGOPR0884_11_00/000001.png"
    for line in lines:
        new, orig = line.split("\t")
        assert read(os.path.join(train, "blur", new)) == f"blur:{orig}"
        assert read(os.path.join(train, "sharp", new)) == f"sharp:{orig}"
    assert os.listdir(os.path.join(dst, "test", "blur")) == ["1.png"]
    assert os.path.isfile(os.path.join(src, "train", "GOPR0372_07_00", "blur", "000047.png"))


def test_scene_naming_option(tmp_path):
    """--naming scene writes `<scene>_<file>` names, as the official preprocessing.py does."""
    src = make_tree(str(tmp_path / "src"), TREE)
    dst = str(tmp_path / "dst")
    prepare_gopro.main(["--src", src, "--dst", dst, "--naming", "scene", "--splits", "test"])
    assert os.listdir(os.path.join(dst, "test", "sharp")) == ["GOPR0384_11_00_000001.png"]
    assert not os.path.exists(os.path.join(dst, "train"))


@pytest.mark.parametrize("mode", ["hard", "sym"])
def test_link_modes(tmp_path, mode):
    """--link hard|sym links the source images instead of copying them."""
    src = make_tree(str(tmp_path / "src"), {"train": TREE["train"], "test": TREE["test"]})
    dst = str(tmp_path / "dst")
    prepare_gopro.main(["--src", src, "--dst", dst, "--link", mode])
    out = os.path.join(dst, "train", "sharp", "1.png")
    orig = os.path.join(src, "train", "GOPR0372_07_00", "sharp", "000047.png")
    if mode == "sym":
        assert os.path.islink(out) and os.path.samefile(out, orig)
    else:
        assert not os.path.islink(out) and os.stat(out).st_ino == os.stat(orig).st_ino


def test_blur_without_sharp_names_the_file_and_writes_nothing(tmp_path):
    """A blur frame without its sharp counterpart is an error naming that file, raised before
    any output is written."""
    src = make_tree(str(tmp_path / "src"), TREE)
    os.remove(os.path.join(src, "test", "GOPR0384_11_00", "sharp", "000001.png"))
    dst = str(tmp_path / "dst")
    with pytest.raises(DataError, match=r"blur image .*GOPR0384_11_00.blur.000001\.png has no sharp"):
        prepare_gopro.main(["--src", src, "--dst", dst])
    assert not os.path.exists(dst)


def test_missing_split_and_non_empty_destination(tmp_path):
    """A missing split folder and an already-filled destination are refused with one clear line."""
    src = make_tree(str(tmp_path / "src"), {"train": TREE["train"]})
    with pytest.raises(DataError, match=r"missing split folder .*test"):
        prepare_gopro.main(["--src", src, "--dst", str(tmp_path / "a")])
    dst = str(tmp_path / "b")
    prepare_gopro.main(["--src", src, "--dst", dst, "--splits", "train"])
    with pytest.raises(DataError, match="is not empty"):
        prepare_gopro.main(["--src", src, "--dst", dst, "--splits", "train"])


def test_cli_reports_error_line_and_exit_code(tmp_path):
    """Run as a script, bad input prints `error: ...` on stderr and exits with code 2."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "prepare_gopro.py"),
                           "--src", str(tmp_path / "nope"), "--dst", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --src ")
