"""Writers never destroy what they read or what the user did not ask them to replace, and every
mistake gets one line: deploy/infer.py, tools/eval.py, tools/predict.py, tools/convert_weights.py
and tools/export.py.

Data-loss tests snapshot the bytes of every file that could be hit before the command and assert
they are unchanged after it. Runs are in-process on 32x32 images and a width-16 MIRNetV2.
"""
import errno
import os
import shutil

import cv2
import numpy as np
import pytest
import yaml

from tests.test_export_infer import DEMO_CFG, ROOT, TINY, _load_script, _tiny_model
from tests.test_convert import TINY_PTH

CFG = ["-c", DEMO_CFG, "-o", *TINY]


def _tool(name):
    folder = "deploy" if name == "infer" else "tools"
    return _load_script(f"ppir_safety_{name}", os.path.join(ROOT, folder, f"{name}.py"))


def cli(name, argv, capsys):
    """Run an entry point as a user would (through run_cli); returns (exit code, stdout, stderr lines)."""
    from ppir.errors import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(_tool(name).main, [str(a) for a in argv])
    out = capsys.readouterr()
    return info.value.code, out.out, [line for line in out.err.splitlines() if line.strip()]


def assert_one_line(code, err, *fragments):
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def snapshot(root):
    """Every file below `root` with its bytes (symlinks followed), to compare before and after."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[os.path.relpath(path, root)] = f.read()
    return files


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import paddle

    path = tmp_path_factory.mktemp("weights") / "tiny.pdparams"
    paddle.save(_tiny_model(seed=1).net.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, weights):
    """A verified Paddle export (no ONNX) of the tiny MIRNetV2."""
    save_dir = tmp_path_factory.mktemp("export") / "model"
    code = _tool("export").main([*CFG, f"Global.pretrained_model={weights}", "--save_dir", str(save_dir),
                                 "--tune_sizes", "64x64"])
    assert code == 0
    return save_dir


@pytest.fixture
def data(tmp_path):
    """tmp_path/data/{noisy,gt}/img_<i>.png: three 32x32 pairs."""
    rng = np.random.default_rng(0)
    for sub in ("noisy", "gt"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "data" / sub / f"img_{i}.png"), rng.integers(0, 255, (32, 32, 3), np.uint8))
    return tmp_path / "data"


# ---- deploy/infer.py: outputs never land on or in what is read ---------------------------------

@pytest.mark.parametrize("output, extra, fragment", [
    ("gt", ["--gt", "gt"], "is the --gt folder"),
    ("gt/../gt", ["--gt", "gt"], "is the --gt folder"),
    ("gt_link", ["--gt", "gt"], "is the --gt folder"),
    ("noisy", [], "is the --input folder"),
    ("noisy/results", [], "lies inside the --input folder"),
    ("./noisy/../noisy/img_0.png", ["--input1"], "is the --input file"),
])
def test_infer_refuses_outputs_onto_its_inputs(export_dir, data, capsys, monkeypatch, output, extra, fragment):
    """`--output gt/ --gt gt/` used to overwrite the ground truth and then score 59 dB against
    itself; any spelling of an input/gt folder or file (symlink, `..`, a subfolder) is refused
    before any work, even with --overwrite, and no byte of the data changes."""
    monkeypatch.chdir(data)
    os.symlink("gt", "gt_link")
    source = "noisy/img_0.png" if extra == ["--input1"] else "noisy"
    extra = [] if extra == ["--input1"] else extra
    before = snapshot(data)
    code, _, err = cli("infer", ["--model_dir", export_dir, "--input", source, "--output", output, "--overwrite",
                                 *extra], capsys)
    assert_one_line(code, err, fragment, "refusing to")
    assert snapshot(data) == before


def test_infer_refuses_output_inside_the_mask_folder(export_dir, data, tmp_path, capsys):
    """The --mask folder is read data too (inpainting models): results may not go into it."""
    model = tmp_path / "mask_model"
    shutil.copytree(export_dir, model)
    with open(model / "inference.yml") as f:
        spec = yaml.safe_load(f)
    spec["inputs"].append({"name": "mask", "source": "mask", "channels": 1, "role": "mask",
                           "mask_convention": "1 = hole"})
    with open(model / "inference.yml", "w") as f:
        yaml.safe_dump(spec, f)
    before = snapshot(data)
    code, _, err = cli("infer", ["--model_dir", model, "--input", data / "noisy", "--mask", data / "gt",
                                 "--output", data / "gt" / "out"], capsys)
    assert_one_line(code, err, "lies inside the --mask folder")
    assert snapshot(data) == before


def test_infer_replaces_only_files_it_wrote(export_dir, data, tmp_path, capsys):
    """An existing file ppir did not write is refused without --overwrite (and replaced with it);
    re-running into ppir's own output folder works without --overwrite (TIPC reruns)."""
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"a picture the user cares about")
    args = ["--model_dir", export_dir, "--input", data / "noisy" / "img_0.png", "--cpu_threads", 1]
    code, _, err = cli("infer", [*args, "--output", mine], capsys)
    assert_one_line(code, err, "mine.png exists and ppir did not write it", "--overwrite")
    assert mine.read_bytes() == b"a picture the user cares about"
    assert cli("infer", [*args, "--output", mine, "--overwrite"], capsys)[0] == 0
    assert cv2.imread(str(mine)).shape == (32, 32, 3)

    out = tmp_path / "out"
    folder_args = ["--model_dir", export_dir, "--input", data / "noisy", "--output", out, "--cpu_threads", 1]
    assert cli("infer", folder_args, capsys)[0] == 0
    first = snapshot(out)
    assert cli("infer", folder_args, capsys)[0] == 0
    assert snapshot(out) == first
    (out / "img_1.png").unlink()
    (out / "img_1.png").write_bytes(b"x")  # listed in the marker: still ppir's name, so replaced
    assert cli("infer", folder_args, capsys)[0] == 0


def test_infer_refuses_existing_file_output_for_a_folder_before_inference(export_dir, data, tmp_path, capsys,
                                                                          monkeypatch):
    """`--input dir/ --output existing.png` is refused before any image is run (it used to fail
    after the whole inference), and the file is untouched."""
    target = tmp_path / "existing.png"
    target.write_bytes(b"keep")
    infer = _tool("infer")
    from ppir.inference import api

    monkeypatch.setattr(api.ExportedModel, "run", lambda *a, **k: pytest.fail("the model ran"))
    from ppir.errors import run_cli

    with pytest.raises(SystemExit) as info:
        run_cli(infer.main, ["--model_dir", str(export_dir), "--input", str(data / "noisy"), "--output", str(target)])
    assert info.value.code == 2
    assert "is an existing file, but --input has 3 images" in capsys.readouterr().err
    assert target.read_bytes() == b"keep"


# ---- deploy/infer.py and tools/predict.py: folder runs go on past a bad image -----------------

def test_infer_folder_run_skips_an_unreadable_image(export_dir, data, tmp_path, capsys):
    """One corrupt image does not stop a folder run: it is reported in one line, the others are
    written, and the run ends with exit 1 and the list of failures."""
    (data / "noisy" / "img_1.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code, _, err = cli("infer", ["--model_dir", export_dir, "--input", data / "noisy", "--output", out,
                                 "--gt", data / "gt", "--cpu_threads", 1], capsys)
    assert code == 1
    assert err[0].startswith(f"skipped {data / 'noisy' / 'img_1.png'}: cannot decode image")
    assert err[-1] == f"error: 1 of 3 images failed: {data / 'noisy' / 'img_1.png'}"
    assert sorted(os.listdir(out)) == [".ppir-outputs", "img_0.png", "img_2.png"]


def test_predict_refuses_its_input_folder_and_skips_bad_images(weights, data, tmp_path, capsys):
    """tools/predict.py: --output equal to --input is refused with the data unchanged; a corrupt
    image in a folder run is skipped and the run exits 1 naming it."""
    args = [*CFG, f"Global.pretrained_model={weights}", "--input", data / "noisy"]
    before = snapshot(data)
    code, _, err = cli("predict", [*args, "--output", data / "noisy" / "."], capsys)
    assert_one_line(code, err, "is the --input folder")
    assert snapshot(data) == before
    (data / "noisy" / "img_0.png").write_bytes(b"junk")
    code, _, err = cli("predict", [*args, "--output", tmp_path / "out"], capsys)
    assert code == 1 and err[-1] == f"error: 1 of 3 images failed: {data / 'noisy' / 'img_0.png'}"
    assert sorted(os.listdir(tmp_path / "out")) == [".ppir-outputs", "img_1.png", "img_2.png"]


def test_infer_folder_run_goes_on_past_a_tiny_image(export_dir, data, tmp_path, capsys):
    """A 7x5 image that sorts first is padded up and restored at its own size; the rest of the
    folder follows (a tiny file used to abort the whole run before any image was written)."""
    cv2.imwrite(str(data / "noisy" / "a_tiny.png"), np.full((7, 5, 3), 128, np.uint8))
    out = tmp_path / "out"
    code, _, _ = cli("infer", ["--model_dir", export_dir, "--input", data / "noisy", "--output", out,
                               "--quiet"], capsys)
    assert code == 0
    assert sorted(os.listdir(out)) == [".ppir-outputs", "a_tiny.png", "img_0.png", "img_1.png", "img_2.png"]
    assert cv2.imread(str(out / "a_tiny.png")).shape == (7, 5, 3)


@pytest.mark.parametrize("argv, fragment", [
    (["--output", "{file}/out"], "is a file, not a folder"),
    (["--tile_overlap", "-4"], "--tile_overlap must be >= 0, got -4"),
    (["--tile", "30"], "--tile 30 must be a positive multiple of 4"),
])
def test_infer_argument_mistakes_name_the_real_culprit(export_dir, data, tmp_path, capsys, argv, fragment):
    """An --output below a regular file, a negative overlap, a tile the model cannot take: each is
    refused before any image is read, naming the flag at fault (a negative overlap used to blame
    the tile size; an output below a file raised NotADirectoryError)."""
    (tmp_path / "plain.txt").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "plain.txt")) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out")]
    code, _, err = cli("infer", ["--model_dir", export_dir, "--input", data / "noisy", *argv], capsys)
    assert code == 2 and fragment in err[-1], err  # argparse prints its usage above the line
    assert not (tmp_path / "out").exists()


# ---- deploy/infer.py: resources ---------------------------------------------------------------

def test_infer_out_of_memory_is_one_line_suggesting_tiles(export_dir, data, tmp_path, capsys, monkeypatch):
    """An image too large to run whole (the allocation fails) gets one line naming the image and
    its size and suggesting --tile, not a traceback."""
    from ppir.inference import predictor

    infer = _tool("infer")

    def fail(self, feeds):
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(predictor.PaddlePredictor, "run", fail)
    monkeypatch.setattr(predictor.OnnxPredictor, "run", fail)
    from ppir.errors import run_cli

    with pytest.raises(SystemExit) as info:
        run_cli(infer.main, ["--model_dir", str(export_dir), "--input", str(data / "noisy" / "img_0.png"),
                             "--output", str(tmp_path / "o.png"), "--cpu_threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert "img_0.png" in err[0] and "(32x32) does not fit in memory untiled; pass --tile 512" in err[0]


@pytest.mark.parametrize("exc, shape, tile, expected", [
    (MemoryError(), (1, 3, 900, 1200), None, "a.png (1200x900) does not fit in memory untiled; pass --tile 512"),
    (RuntimeError("onnxruntime: Failed to allocate memory for requested buffer"), (1, 3, 64, 64), 256,
     "a.png (64x64) does not fit in memory with --tile 256; pass --tile 128"),
    (RuntimeError("ResourceExhaustedError: Out of memory error on CPU"), (2, 3, 64, 64), None,
     "(batch of 2; or pass --batch_size 1); pass --tile 512"),
    (RuntimeError("shape [1, 3] does not match"), (1, 3, 8, 8), None, None),
])
def test_out_of_memory_is_recognised_and_explained(exc, shape, tile, expected):
    """Allocation failures of numpy, Paddle and onnxruntime are told apart from other errors, and
    the line says what was tried and what to pass instead (a tile the model's multiple allows);
    any other backend exception becomes a one-line ExportError, never a raw traceback."""
    from ppir.errors import DataError, ExportError
    from ppir.inference.api import _graph_failure

    error = _graph_failure(exc, "a.png", shape, tile, multiple=8)
    assert isinstance(error, DataError if expected else ExportError)
    assert (expected or "failed in the model") in str(error)


def test_unwritable_output_folder_is_one_line(export_dir, data, tmp_path, capsys, monkeypatch):
    """A read-only (or full) output folder is named in one line (simulated: tests run as root)."""
    from ppir.utils import paths

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(paths, "write_atomic", read_only)
    code, _, err = cli("infer", ["--model_dir", export_dir, "--input", data / "noisy", "--output",
                                 tmp_path / "ro", "--cpu_threads", 1], capsys)
    assert_one_line(code, err, f"cannot write to folder {tmp_path / 'ro'}", "read-only")


def test_failed_image_write_leaves_no_temp_file(tmp_path, monkeypatch):
    """write_image goes through a temp file; a write that fails (disk full) removes it and raises
    DataError naming the file and folder, leaving any previous file intact."""
    from ppir.data.image_io import write_image
    from ppir.errors import DataError
    from ppir.utils import paths

    target = tmp_path / "o.png"
    target.write_bytes(b"previous")

    class Full:
        def __init__(self, path, mode):
            self.f = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paths, "open", Full, raising=False)
    with pytest.raises(DataError, match=f"cannot write {target} .folder {tmp_path}.: no space left"):
        write_image(str(target), np.zeros((8, 8, 3), np.float32))
    assert os.listdir(tmp_path) == ["o.png"] and target.read_bytes() == b"previous"


# ---- deploy/infer.py: a damaged export directory ---------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("inputs", "abc"), ("pad_multiple", "x"), ("output", None), ("pad_mode", "wrap"),
    ("host_steps", 3), ("tile", -1), ("metrics", 5), ("model_name", ["a"]),
])
def test_infer_names_a_bad_inference_yml_value(export_dir, data, tmp_path, capsys, key, value):
    """A hand-edited inference.yml value of the wrong type is named by key in one line (these were
    ValueError/TypeError tracebacks deep inside inference)."""
    model = tmp_path / "model"
    shutil.copytree(export_dir, model)
    with open(model / "inference.yml") as f:
        spec = yaml.safe_load(f)
    spec[key] = value
    with open(model / "inference.yml", "w") as f:
        yaml.safe_dump(spec, f)
    code, _, err = cli("infer", ["--model_dir", model, "--input", data / "noisy", "--output", tmp_path / "o"], capsys)
    assert_one_line(code, err, f"inference.yml: {key} must be")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, damage", [("inference.pdiparams", "truncate"), ("inference.json", "garbage")])
def test_infer_names_a_corrupt_model_file(export_dir, data, tmp_path, capsys, name, damage):
    """A truncated parameter file or a garbled model file is reported in one line naming the
    export files (Paddle raised a multi-line C++ RuntimeError)."""
    model = tmp_path / "model"
    shutil.copytree(export_dir, model)
    path = model / name
    path.write_bytes(path.read_bytes()[:1000] if damage == "truncate" else b"garbage")
    code, _, err = cli("infer", ["--model_dir", model, "--input", data / "noisy", "--output", tmp_path / "o"], capsys)
    assert_one_line(code, err, "cannot load the model", "inference.pdiparams", "corrupt or incomplete export")


def test_infer_model_dir_that_is_a_file(export_dir, data, tmp_path, capsys):
    """--model_dir pointing at a file inside the export says so."""
    code, _, err = cli("infer", ["--model_dir", export_dir / "inference.yml", "--input", data / "noisy"], capsys)
    assert_one_line(code, err, "is a file; give the export folder")


# ---- tools/eval.py ----------------------------------------------------------------------------

@pytest.mark.parametrize("save_dir, fragment", [
    (".", "is the Eval dataset folder"),
    ("noisy/..", "is the Eval dataset folder"),
    ("gt/restored", "lies inside the Eval dataset folder"),
])
def test_eval_save_dir_never_writes_into_the_dataset(weights, data, capsys, monkeypatch, save_dir, fragment):
    """`tools/eval.py --save_dir` at or inside the Eval dataset used to write the restored images
    over the dataset's own inputs; it is refused before the model is built, bytes unchanged."""
    monkeypatch.chdir(data)
    dataset = (f"Eval.dataset={{'name': 'PairedImageDataset', 'root': '{data}', "
               "'input_dir': 'noisy', 'target_dir': 'gt'}")
    before = snapshot(data)
    code, _, err = cli("eval", [*CFG, f"Global.pretrained_model={weights}", dataset, "--save_dir", save_dir], capsys)
    assert_one_line(code, err, "--save_dir", fragment)
    assert snapshot(data) == before


def test_eval_save_dir_replaces_only_images_it_wrote(weights, data, tmp_path, capsys):
    """--save_dir holding an image ppir did not write under a name eval would use is refused
    (bytes unchanged); eval's own earlier images are replaced on a rerun without a flag."""
    dataset = (f"Eval.dataset={{'name': 'PairedImageDataset', 'root': '{data}', "
               "'input_dir': 'noisy', 'target_dir': 'gt'}")
    args = [*CFG, f"Global.pretrained_model={weights}", dataset, "--save_dir", tmp_path / "saved"]
    assert cli("eval", args, capsys)[0] == 0
    assert cli("eval", args, capsys)[0] == 0
    assert sorted(os.listdir(tmp_path / "saved" / "noisy")) == [".ppir-outputs", "img_0.png", "img_1.png", "img_2.png"]
    stranger = tmp_path / "other" / "noisy" / "img_1.png"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"a user's image")
    code, _, err = cli("eval", [*args[:-1], tmp_path / "other"], capsys)
    assert_one_line(code, err, "img_1.png exists and ppir did not write it")
    assert stranger.read_bytes() == b"a user's image"


# ---- tools/convert_weights.py -----------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["same", "symlink", "hardlink", "dotdot"])
def test_convert_never_replaces_its_source(tmp_path, capsys, spelling):
    """--dst equal to --src (also via a symlink, a hard link or `..`) used to replace the official
    checkpoint with the converted one; it is refused before reading, the source bytes unchanged."""
    src = tmp_path / "official.pth"
    shutil.copy(TINY_PTH, src)
    dst = {"same": src, "symlink": tmp_path / "link.pth", "hardlink": tmp_path / "hard.pth",
           "dotdot": tmp_path / "sub" / ".." / "official.pth"}[spelling]
    if spelling == "symlink":
        os.symlink(src, dst)
    elif spelling == "hardlink":
        os.link(src, dst)
    (tmp_path / "sub").mkdir()
    before = src.read_bytes()
    code, _, err = cli("convert_weights", ["--arch", "MIRNetV2", "--src", src, "--dst", dst,
                                           "--network-args", '{"n_feat": 8, "chan_factor": 1.0}'], capsys)
    assert_one_line(code, err, "is the --src file")
    assert src.read_bytes() == before


def test_convert_replaces_only_its_own_output(tmp_path, capsys):
    """An existing --dst that ppir did not write needs --overwrite; its own earlier output does not."""
    args = ["--arch", "MIRNetV2", "--src", TINY_PTH, "--network-args", '{"n_feat": 8, "chan_factor": 1.0}']
    other = tmp_path / "other.pdparams"
    other.write_bytes(b"someone else's weights")
    code, _, err = cli("convert_weights", [*args, "--dst", other], capsys)
    assert_one_line(code, err, "other.pdparams exists and ppir did not write it")
    assert other.read_bytes() == b"someone else's weights"
    assert cli("convert_weights", [*args, "--dst", tmp_path / "mine.pdparams"], capsys)[0] == 0
    assert cli("convert_weights", [*args, "--dst", tmp_path / "mine.pdparams"], capsys)[0] == 0


# ---- tools/export.py --------------------------------------------------------------------------

@pytest.mark.parametrize("case, fragment", [
    ("file", "is a file, not a folder"),
    ("weights", "is the Global.pretrained_model file"),
    ("inside", "export file"),
    ("cache", "would remove"),
])
def test_export_never_replaces_the_weights_it_reads(weights, tmp_path, capsys, case, fragment):
    """--save_dir that is a file, that is the weights file, whose inference.pdiparams would
    replace the weights being exported, or whose stale TensorRT cache folder (removed on export)
    holds them: one line, exit 2, before the model is built; the weights' bytes unchanged."""
    w = tmp_path / "w.pdparams"
    shutil.copy(weights, w)
    save_dir = tmp_path / "export"
    if case == "file":
        save_dir = tmp_path / "notes.txt"
        save_dir.write_text("not a folder")
    elif case == "weights":
        save_dir = w
    elif case == "inside":
        save_dir.mkdir()
        w = save_dir / "inference.pdiparams"
        shutil.copy(weights, w)
    elif case == "cache":
        (save_dir / "trt_fp16").mkdir(parents=True)
        w = save_dir / "trt_fp16" / "w.pdparams"
        shutil.copy(weights, w)
    before = snapshot(tmp_path)
    code, _, err = cli("export", [*CFG, f"Global.pretrained_model={w}", "--save_dir", save_dir], capsys)
    assert_one_line(code, err, fragment)
    assert snapshot(tmp_path) == before


def test_export_into_an_unwritable_folder_is_one_line(weights, tmp_path, capsys, monkeypatch):
    """A --save_dir that cannot be written (read-only, full) is named in one line, not a traceback."""
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    code, _, err = cli("export", [*CFG, f"Global.pretrained_model={weights}", "--save_dir", tmp_path / "ro"], capsys)
    assert_one_line(code, err, f"cannot write to --save_dir {tmp_path / 'ro'}", "read-only")
    assert not (tmp_path / "ro").exists()


@pytest.mark.parametrize("tool, argv, flag", [
    ("predict", [*CFG, "Global.pretrained_model=W", "--input", "IMG", "--output", ""], "--output"),
    ("export", [*CFG, "Global.pretrained_model=W", "--save_dir", " "], "--save_dir"),
    ("convert_weights", ["--arch", "MIRNetV2", "--src", TINY_PTH, "--dst", ""], "--dst"),
])
def test_empty_output_path_is_refused(weights, data, capsys, monkeypatch, tool, argv, flag):
    """An empty output path (a harness substituting nothing) used to mean "the current folder";
    it is refused in one line and nothing is written there."""
    monkeypatch.chdir(data)
    argv = [{"Global.pretrained_model=W": f"Global.pretrained_model={weights}", "IMG": "noisy"}.get(a, a)
            for a in argv]
    before = snapshot(data)
    code, _, err = cli(tool, argv, capsys)
    assert_one_line(code, err, f"{flag} is empty")
    assert snapshot(data) == before


# ---- corrupt weights for the dygraph tools ----------------------------------------------------

@pytest.mark.parametrize("tool, extra", [
    ("eval", []), ("predict", ["--input", "IMG", "--output", "OUT"]), ("export", ["--save_dir", "OUT"]),
])
def test_corrupt_weights_are_one_line(data, tmp_path, capsys, tool, extra):
    """A truncated .pdparams is named in one line by eval, predict and export, and nothing is written."""
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"\x80\x04 truncated pickle")
    extra = [{"IMG": data / "noisy", "OUT": tmp_path / "out"}.get(a, a) for a in extra]
    code, _, err = cli(tool, [*CFG, f"Global.pretrained_model={bad}", *extra], capsys)
    assert_one_line(code, err, "cannot read weights", "bad.pdparams")
    assert not (tmp_path / "out").exists()
