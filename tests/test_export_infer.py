"""Tests for the export pipeline (ppir.inference.export, tools/export.py) and deploy/infer.py:
export, verification, path choice, inference, error paths.

One tiny MIRNetV2 (configs/demo/mirnetv2_demo.yml at width 16 with one MRB per RRG) is
exported once per module, with ONNX; the tests then run that directory through both backends.
"""
import importlib.util
import os
import re
import shutil

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, run_tool

DEMO_CFG = os.path.join(ROOT, "configs", "demo", "mirnetv2_demo.yml")
TINY = ["Model.network.n_feat=16", "Model.network.n_MRB=1"]


def _load_script(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_model(seed):
    import paddle

    from ppir.config import load_config
    from ppir.models import build_model

    paddle.set_device("cpu")
    paddle.seed(seed)
    model = build_model(load_config(DEMO_CFG, TINY))
    model.net.eval()
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A verified export (Paddle + ONNX) of the tiny MIRNetV2 with weights saved from seed 1."""
    import paddle

    root = tmp_path_factory.mktemp("export")
    model = _tiny_model(seed=1)
    weights = str(root / "tiny.pdparams")
    paddle.save(model.net.state_dict(), weights)
    save_dir = root / "model"
    save_dir.mkdir()
    (save_dir / "keep_me.txt").write_text("a checkpoint or log that lives next to the export")
    proc = run_tool("tools/export.py", "-c", DEMO_CFG, "-o", *TINY, f"Global.pretrained_model={weights}",
                    "--save_dir", str(save_dir), "--onnx", "--tune_sizes", "64x64,160x96")
    assert proc.returncode == 0, proc.stderr
    return {"dir": str(save_dir), "model": model, "weights": weights, "stdout": proc.stdout, "root": root}


def _infer(*argv):
    infer = _load_script("ppir_deploy_infer", os.path.join(ROOT, "deploy", "infer.py"))
    return infer.main([str(a) for a in argv])


def export_tool():
    return _load_script("ppir_tools_export", os.path.join(ROOT, "tools", "export.py"))


def test_default_path_is_the_fastest_measured_unless_flags_say_otherwise(tmp_path):
    """Without performance flags the path export measured fastest runs; any flag the user gives
    wins; an export without timings (or whose ONNX file is gone) uses oneDNN; a path that failed
    the export check is refused."""
    from ppir.errors import ExportError
    from ppir.inference.paths import choose_path

    def choose(record, pixels=None, **flags):
        return choose_path(str(tmp_path), record, pixels=pixels, **flags)

    record = {"default_path": {"backend": "onnxruntime", "enable_mkldnn": False}}
    assert choose(record)[:2] == ("paddle", True)  # no inference.onnx here
    (tmp_path / "inference.onnx").write_bytes(b"")
    assert choose(record)[:2] == ("onnxruntime", False)
    assert choose(record, enable_mkldnn=False)[:2] == ("paddle", False)
    assert choose({})[:2] == ("paddle", True)
    # Timed at two sizes: the entry nearest (in log pixels) to the model input wins.
    by_size = {**record, "default_path_by_size": [
        {"size": [256, 256], "backend": "paddle", "enable_mkldnn": True},
        {"size": [720, 1280], "backend": "onnxruntime", "enable_mkldnn": False}]}
    assert choose(by_size, pixels=300 * 300)[:2] == ("paddle", True)
    assert choose(by_size, pixels=1000 * 700)[:2] == ("onnxruntime", False)
    assert "1280x720" in choose(by_size, pixels=1000 * 700)[2]
    assert choose(by_size)[:2] == ("onnxruntime", False)  # no size known: default_path
    # A path whose output disagreed with dygraph at export is refused by name, never run silently.
    failed = {"default_path": {"backend": "paddle", "enable_mkldnn": False},
              "failed_paths": {"paddle_onednn_on": "max abs diff 0.04 > 1e-05"}}
    assert choose(failed)[:2] == ("paddle", False)
    assert choose({"failed_paths": failed["failed_paths"]})[:2] == ("paddle", False)
    with pytest.raises(ExportError, match="paddle_onednn_on path did not match dygraph.*--enable_mkldnn False"):
        choose(failed, enable_mkldnn=True)


def test_tuning_times_larger_sizes_only_for_paths_close_to_the_fastest(monkeypatch):
    """Each tuned size records its own fastest path; a path more than CANDIDATE_FACTOR slower
    than the fastest at one size is not timed at the next (full-width models take seconds per
    large run)."""
    from ppir.inference import export

    table = {(64, 64): {"paddle_onednn_on": 10.0, "paddle_onednn_off": 30.0, "onnxruntime": 12.0},
             (96, 160): {"paddle_onednn_on": 50.0, "onnxruntime": 20.0}}
    timed = []

    def fake_time_paths(predictors, feeds, runs=3, warmup=1):
        size = tuple(feeds["x"].shape[2:])
        timed.append((size, sorted(predictors)))
        return {name: table[size][name] for name in predictors}

    monkeypatch.setattr(export, "time_paths", fake_time_paths)
    feeds = [(size, {"x": np.zeros((1, 3, *size), np.float32)}) for size in table]
    entries = export.tune_paths(dict.fromkeys(table[(64, 64)]), feeds, log=lambda line: None)
    assert timed == [((64, 64), ["onnxruntime", "paddle_onednn_off", "paddle_onednn_on"]),
                     ((96, 160), ["onnxruntime", "paddle_onednn_on"])]
    assert [e["fastest"] for e in entries] == ["paddle_onednn_on", "onnxruntime"]
    assert export_tool().parse_sizes("1280x720,256x256") == [(256, 256), (720, 1280)]


def test_export_writes_a_self_describing_directory(exported):
    """The export holds the PIR model, ONNX and an inference.yml carrying the io_spec, the
    config's metrics and the measured check results; unrelated files in the dir survive."""
    names = sorted(os.listdir(exported["dir"]))
    assert names == ["inference.json", "inference.onnx", "inference.pdiparams", "inference.yml", "keep_me.txt"]
    with open(os.path.join(exported["dir"], "inference.yml")) as f:
        spec = yaml.safe_load(f)
    assert spec["model_name"] == "MIRNetV2" and spec["output_name"]
    assert spec["inputs"] == [{"name": "x", "source": "input", "channels": 3, "dtype": "float32",
                               "value_range": [0.0, 1.0], "role": "image"}]
    assert spec["output"] == {"channels": 3, "value_range": [0.0, 1.0], "composite": False}
    assert spec["host_steps"] == [] and spec["color_order"] == "RGB" and spec["layout"] == "NCHW"
    assert spec["pad_multiple"] == 4 and spec["pad_mode"] == "reflect"
    assert spec["tile"] is None and spec["tile_overlap"] == 32
    assert [m["name"] for m in spec["metrics"]] == ["PSNR", "SSIM"]
    assert spec["export"]["weights"] == exported["weights"] and spec["export"]["onnx_opset"] == 13
    from ppir.inference.paths import PATHS as paths

    timings = spec["export"]["cpu_paths"]["timings"]
    assert [t["size"] for t in timings] == [[64, 64], [96, 160]]
    assert set(timings[0]["median_ms"]) == {"paddle_onednn_on", "paddle_onednn_off", "onnxruntime"}
    assert set(timings[1]["median_ms"]) <= set(timings[0]["median_ms"])
    for t in timings:
        assert t["fastest"] == min(t["median_ms"], key=t["median_ms"].get)
    assert spec["default_path"] == paths[timings[0]["fastest"]]
    assert spec["default_path_by_size"] == [{"size": t["size"], **paths[t["fastest"]]} for t in timings]
    diffs = spec["export"]["max_abs_diff"]
    assert set(diffs) == {"paddle_onednn_on", "paddle_onednn_off", "onnxruntime"}
    assert all(0 <= d <= 1e-5 for d in diffs.values())
    # Each step is printed as it happens, in order.
    steps = ["tracing", "checking Paddle Inference (CPU, oneDNN on): max abs diff",
             "checking onnxruntime: max abs diff", "timing 64x64", "timing 160x96", "exported MIRNetV2"]
    where = [exported["stdout"].find(step) for step in steps]
    assert -1 not in where and where == sorted(where), exported["stdout"]


@pytest.mark.parametrize("backend,onednn", [("paddle", True), ("paddle", False), ("onnxruntime", None)])
def test_predictor_matches_dygraph_on_non_square_input(exported, backend, onednn):
    """Paddle Inference (oneDNN on/off) and onnxruntime reproduce the dygraph network to 1e-5
    on a fixed non-square batch the export check did not use."""
    import paddle

    from ppir.inference.predictor import open_graph

    x = np.random.default_rng(7).random((2, 3, 36, 52), dtype=np.float32)
    with paddle.no_grad():
        ref = exported["model"].export_module()(paddle.to_tensor(x)).numpy()
    predictor = open_graph(exported["dir"], backend=backend, enable_mkldnn=bool(onednn), cpu_threads=1)
    out = predictor.run_concat(x)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5


def test_infer_folder_with_gt_prints_metrics_and_benchmark(exported, demo_denoise, tmp_path, capsys):
    """A folder run writes one PNG per input, prints per-image and mean PSNR/SSIM, and with
    --benchmark True prints the AutoLog block."""
    val = tmp_path / "val"
    names = sorted(os.listdir(os.path.join(demo_denoise, "val", "input")))[:4]
    for sub in ("input", "groundtruth"):
        (val / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(os.path.join(demo_denoise, "val", sub, name), val / sub / name)
    out = tmp_path / "restored"
    assert _infer("--model_dir", exported["dir"], "--input", f"{val}/input", "--output", out,
                  "--gt", f"{val}/groundtruth", "--batch_size", 2, "--cpu_threads", 1,
                  "--enable_mkldnn", "False", "--benchmark", "True") == 0
    text = capsys.readouterr().out
    assert sorted(os.listdir(out)) == [".ppir-outputs"] + [os.path.splitext(n)[0] + ".png" for n in names]
    rows = re.findall(r"^(\S+\.png)  psnr: (\d+\.\d{4})  ssim: (\d\.\d{4})$", text, flags=re.M)
    assert [r[0] for r in rows] == names
    assert re.search(rf"^mean over {len(names)} images  psnr: \d+\.\d{{4}}  ssim: \d\.\d{{4}}$", text, flags=re.M)
    assert "root INFO:  preprocess_time(ms): " in text and "gpu_rss(MB): None, gpu_util: None%" in text
    assert f"root INFO:  data_num: {len(names) // 2}" in text and "root INFO:  enable_mkldnn: False" in text
    assert "path: Paddle Inference (CPU, oneDNN off, fp32) (as requested)" in text


def test_infer_without_output_writes_to_default_folder(exported, demo_denoise, tmp_path, monkeypatch, capsys):
    """Without --output (the TIPC harness passes none) results go to ./output/infer/<model_name>/,
    which is printed, and nothing is written into the input folder; an empty `--output=` means the
    same, and re-running into that folder works."""
    src = tmp_path / "noisy"
    src.mkdir()
    names = sorted(os.listdir(os.path.join(demo_denoise, "val", "input")))[:2]
    for name in names:
        shutil.copy(os.path.join(demo_denoise, "val", "input", name), src / name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _infer("--model_dir", exported["dir"], "--input", src, "--cpu_threads", 1) == 0
    with open(os.path.join(exported["dir"], "inference.yml")) as f:
        model_name = yaml.safe_load(f)["model_name"]
    out = work / "output" / "infer" / model_name
    assert f"writing results to {os.path.join('output', 'infer', model_name, '')}" in capsys.readouterr().out
    assert sorted(n for n in os.listdir(out) if n.endswith(".png")) == [os.path.splitext(n)[0] + ".png" for n in names]
    assert sorted(os.listdir(src)) == names
    assert _infer("--model_dir", exported["dir"], "--input", src, "--output=", "--cpu_threads", 1) == 0  # a rerun


def test_onnxruntime_backend_writes_the_same_images(exported, demo_denoise, tmp_path):
    """The onnxruntime backend saves the same uint8 images as Paddle Inference (within 1 level)."""
    from ppir.data.image_io import read_image

    src = os.path.join(demo_denoise, "val", "input")
    name = sorted(os.listdir(src))[0]
    for backend in ("paddle", "onnxruntime"):
        _infer("--model_dir", exported["dir"], "--input", f"{src}/{name}", "--output", tmp_path / f"{backend}.png",
               "--backend", backend, "--cpu_threads", 1)
    diff = np.abs(read_image(str(tmp_path / "paddle.png")) - read_image(str(tmp_path / "onnxruntime.png")))
    assert diff.max() <= 1 / 255 + 1e-6


def test_tiled_inference_is_close_to_whole_image(exported, tmp_path):
    """--tile runs the predictor on overlapping tiles; the feathered result is within 40 dB PSNR
    of the whole-image result (not exact: MIRNetV2's attention pooling sees only its tile)."""
    from ppir.data.image_io import read_image, write_image
    from ppir.metrics import calculate_psnr
    from skimage import data

    src = tmp_path / "astronaut.png"
    write_image(str(src), data.astronaut()[100:172, 180:280].astype(np.float32) / 255)  # 72 x 100
    _infer("--model_dir", exported["dir"], "--input", src, "--output", tmp_path / "whole.png", "--cpu_threads", 1,
           "--enable_mkldnn", "False")
    _infer("--model_dir", exported["dir"], "--input", src, "--output", tmp_path / "tiled.png", "--cpu_threads", 1,
           "--enable_mkldnn", "False", "--tile", 48, "--tile_overlap", 16)
    whole, tiled = read_image(str(tmp_path / "whole.png")), read_image(str(tmp_path / "tiled.png"))
    assert whole.shape == tiled.shape == (72, 100, 3)
    assert calculate_psnr(tiled, whole) >= 40  # ~62 dB after uint8 rounding (uniform averaging: ~32 dB)


def test_missing_export_file_is_one_line_exit_2(exported, demo_denoise, tmp_path):
    """An export dir missing a file makes infer.py exit 2 with one line naming that file."""
    broken = tmp_path / "broken"
    shutil.copytree(exported["dir"], broken)
    os.remove(broken / "inference.pdiparams")
    proc = run_tool("deploy/infer.py", "--model_dir", str(broken), "--input",
                    os.path.join(demo_denoise, "val", "input"), "--output", str(tmp_path / "out"),
                    "--backend", "paddle")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "inference.pdiparams" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("remove,extra,needle", [
    ("inference.yml", [], "inference.yml"),
    ("inference.onnx", ["--backend", "onnxruntime"], "inference.onnx"),
    ("inference.json", ["--backend", "paddle"], "inference.json"),
])
def test_incomplete_export_errors_name_the_file(exported, tmp_path, capsys, remove, extra, needle):
    """Each missing piece of an export is reported by name through run_cli (exit 2)."""
    from ppir.errors import run_cli

    broken = tmp_path / "broken"
    shutil.copytree(exported["dir"], broken)
    os.remove(broken / remove)
    infer = _load_script("ppir_deploy_infer", os.path.join(ROOT, "deploy", "infer.py"))
    img = tmp_path / "in.png"
    from ppir.data.image_io import write_image

    write_image(str(img), np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(infer.main, ["--model_dir", str(broken), "--input", str(img), "--output", str(tmp_path / "o.png"),
                             *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_mask_for_a_model_without_mask_is_an_error(exported, tmp_path):
    """--mask is refused for a model whose inference.yml inputs hold no mask."""
    from ppir.data.image_io import write_image
    from ppir.errors import DataError

    img = tmp_path / "in.png"
    write_image(str(img), np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(DataError, match="takes no mask"):
        _infer("--model_dir", exported["dir"], "--input", img, "--mask", img, "--output", tmp_path / "o.png")


def test_export_that_disagrees_with_dygraph_is_refused(exported, tmp_path, monkeypatch):
    """When the saved model does not reproduce dygraph, export raises ExportError and leaves the
    target directory exactly as it was (old export and other files untouched)."""
    import paddle

    from ppir.errors import ExportError
    from ppir.inference import export as pipeline

    export = export_tool()
    target = tmp_path / "target"
    shutil.copytree(exported["dir"], target)
    before = {n: (target / n).read_bytes() for n in os.listdir(target)}

    def stale_static(layer, inputs, prefix):  # a static model of *other* weights (seed 1)
        for name in ("inference.json", "inference.pdiparams"):
            shutil.copy(os.path.join(exported["dir"], name), os.path.dirname(prefix))

    monkeypatch.setattr(pipeline, "trace", stale_static)
    other = _tiny_model(seed=2)
    weights = str(tmp_path / "other.pdparams")
    paddle.save(other.net.state_dict(), weights)
    with pytest.raises(ExportError, match="differs from dygraph"):
        export.main(["-c", DEMO_CFG, "-o", *TINY, f"Global.pretrained_model={weights}", "--save_dir", str(target)])
    assert {n: (target / n).read_bytes() for n in os.listdir(target)} == before


def test_untimed_export_records_a_failed_path_and_succeeds(exported, tmp_path, monkeypatch, capsys):
    """--no_tune with one CPU path disagreeing with dygraph (CTSDG's TIPC export): exit 0, the
    failed path recorded and warned about, the agreeing path the default."""
    from ppir.inference import export as pipeline

    export = export_tool()
    real_max_diff = pipeline.max_diff

    def max_diff(predictor, feeds, references, what):
        return 0.04 if "oneDNN on" in what else real_max_diff(predictor, feeds, references, what)

    monkeypatch.setattr(pipeline, "max_diff", max_diff)
    save_dir = tmp_path / "model"
    assert export.main(["-c", DEMO_CFG, "-o", *TINY, f"Global.pretrained_model={exported['weights']}",
                        "--save_dir", str(save_dir), "--no_tune"]) == 0
    with open(save_dir / "inference.yml") as f:
        spec = yaml.safe_load(f)
    assert list(spec["export"]["failed_paths"]) == ["paddle_onednn_on"]
    assert spec["default_path"] == {"backend": "paddle", "enable_mkldnn": False}
    assert "this path will be refused" in capsys.readouterr().err


def test_export_without_weights_needs_allow_random(tmp_path):
    """Exporting untrained weights must be asked for explicitly."""
    from ppir.errors import CheckpointError

    export = export_tool()
    with pytest.raises(CheckpointError, match="allow_random"):
        export.main(["-c", DEMO_CFG, "--save_dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_commit_replaces_only_export_files(tmp_path):
    """A new export replaces the old export's files (stale ONNX / TensorRT caches removed), keeps
    other files, and writes inference.yml last."""
    from ppir.inference import export
    save, tmp = tmp_path / "save", tmp_path / "save" / ".export-x"
    tmp.mkdir(parents=True)
    for name in ("inference.json", "inference.pdiparams", "inference.onnx", "shape_range_info.pbtxt",
                 "inference.yml", "model.pdparams"):
        (save / name).write_text("old")
    for name in ("inference.json", "inference.pdiparams", "inference.yml"):
        (tmp / name).write_text("new")
    (save / "trt_fp16").mkdir()
    (save / "trt_fp16" / "inference.json").write_text("engine of the old weights")
    export.commit(str(tmp), str(save))
    assert sorted(os.listdir(save)) == [".export-x", "inference.json", "inference.pdiparams", "inference.yml",
                                        "model.pdparams"]
    # A two-graph export (ICT) replaced by a single-graph one leaves no stage folder behind.
    (tmp / "inference.yml").write_text("new")
    (save / "inference.yml").write_text("stages: {transformer: {model_file: transformer/inference.json}}")
    (save / "transformer").mkdir()
    export.commit(str(tmp), str(save))
    assert not (save / "transformer").exists()
    assert (save / "inference.yml").read_text() == "new" and (save / "model.pdparams").read_text() == "old"


@pytest.mark.parametrize("config", ["mimounet_demo.yml"])
def test_export_mimounet_random_weights(config, tmp_path):
    """MIMO-UNet (three outputs; the export keeps the last) exports and verifies with --onnx;
    --allow_random exports seeded untrained weights with a warning."""
    path = os.path.join(ROOT, "configs", "demo", config)
    if not os.path.isfile(path):
        pytest.skip(f"{path} not written yet")
    proc = run_tool("tools/export.py", "-c", path, "-o", "Model.network.num_res=1", "--save_dir",
                    str(tmp_path / "m"), "--onnx", "--allow_random", "--tune_sizes", "64x64")
    assert proc.returncode == 0, proc.stderr
    assert "exporting random weights" in proc.stderr
    with open(tmp_path / "m" / "inference.yml") as f:
        spec = yaml.safe_load(f)
    assert spec["model_name"] == "MIMOUNet" and spec["pad_multiple"] == 4
    assert max(spec["export"]["max_abs_diff"].values()) <= 1e-5


def test_pir_tensorrt_cache_covers_every_shape(tmp_path, monkeypatch):
    """The PIR TensorRT conversion (GPU only, faked here) runs once for a shape range covering the
    inputs, is reused while inputs stay inside it, and is widened when they do not."""
    import sys
    import types

    from ppir.inference.predictor import PaddlePredictor

    calls = []

    class Input:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    def convert(prefix, config):
        calls.append((prefix, config.inputs[0].min_input_shape, config.inputs[0].max_input_shape))
        for ext in (".json", ".pdiparams"):
            with open(config.save_model_dir + ext, "w") as f:
                f.write("trt")

    fake = types.SimpleNamespace(Input=Input, convert=convert,
                                 PrecisionMode=types.SimpleNamespace(FP16="FP16", FP32="FP32"),
                                 TensorRTConfig=lambda **kw: types.SimpleNamespace(**kw))
    monkeypatch.setitem(sys.modules, "paddle.tensorrt", types.ModuleType("paddle.tensorrt"))
    monkeypatch.setitem(sys.modules, "paddle.tensorrt.export", fake)
    predictor = object.__new__(PaddlePredictor)
    predictor.model_dir, predictor.precision = str(tmp_path), "fp16"
    predictor.inputs = [{"name": "x", "channels": 3, "value_range": [0.0, 1.0]}]
    model = str(tmp_path / "inference.json")

    files = predictor._pir_tensorrt_model(model, {(1, 3, 64, 96), (2, 3, 128, 64)})
    assert files == (str(tmp_path / "trt_fp16" / "inference.json"), str(tmp_path / "trt_fp16" / "inference.pdiparams"))
    assert calls == [(str(tmp_path / "inference"), (1, 3, 64, 64), (2, 3, 128, 96))]
    predictor._pir_tensorrt_model(model, {(1, 3, 100, 80)})
    assert len(calls) == 1
    predictor._pir_tensorrt_model(model, {(1, 3, 256, 32)})
    assert calls[-1][1:] == ((1, 3, 64, 32), (2, 3, 256, 96))


def test_bf16_is_refused_on_cpus_without_bf16_kernels(monkeypatch):
    """Without AVX512-BF16/AMX, oneDNN silently runs fp32 for --precision bf16 (measured: identical
    output), so the options check refuses it with one line instead of pretending; with them it is allowed."""
    from ppir.errors import ConfigError
    from ppir.inference import predictor

    monkeypatch.setattr(predictor, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match="AVX512-BF16 or AMX"):
        predictor.check_options("paddle", "cpu", True, "bf16")
    monkeypatch.setattr(predictor, "cpu_has_bf16", lambda: True)
    predictor.check_options("paddle", "cpu", True, "bf16")
