"""The Python API (`ppir.load`): any size in, the input's size out; masks in every usual
encoding; known pixels untouched; tiny images padded up; the command lines agree with it; every
failure a one-line ppir error. Tiny seeded networks (restoration: MIRNetV2 and MIMO-UNet,
inpainting: MISF; CTSDG and ICT have their own modules) on crops of scikit-image's photos.
"""
import os

import numpy as np
import pytest
from skimage import data

import ppir
from ppir.errors import ConfigError, DataError, PpirError
from tests.conftest import ROOT, run_tool

MODELS = {
    "mirnetv2": ("mirnetv2_demo.yml", ["Model.network.n_feat=16", "Model.network.n_MRB=1"]),
    "mimounet": ("mimounet_demo.yml", ["Model.network.num_res=1"]),
    "misf": ("misf_demo.yml", ["Model.networks.generator.residual_blocks=1"]),
}
PHOTO = data.astronaut()[40:137, 150:211]  # 97 x 61: odd, not a multiple of anything


def hole_mask(h, w):
    mask = np.zeros((h, w), bool)
    mask[h // 4:h // 2, w // 3:3 * w // 4] = True
    mask[2 * h // 3:, :w // 5] = True
    return mask


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (export dir, config, weights, overrides)}: seeded weights exported without timing."""
    import paddle

    from ppir.config import load_config
    from ppir.inference.export import export_model
    from ppir.models import build_model

    root = tmp_path_factory.mktemp("api")
    out = {}
    for name, (config, overrides) in MODELS.items():
        config = os.path.join(ROOT, "configs", "demo", config)
        cfg = load_config(config, overrides)
        paddle.seed(1)
        model = build_model(cfg)
        weights = str(root / f"{name}.pdparams")
        paddle.save(model.net.state_dict(), weights)
        export_model(model, str(root / name), cfg=cfg, tune=False, log=lambda line: None)
        out[name] = (str(root / name), config, weights, overrides)
    return out


@pytest.mark.parametrize("name", ["mirnetv2", "mimounet"])
def test_restoration_of_an_odd_size_photo_matches_deploy_and_dygraph(models, name, tmp_path):
    """A 97x61 photo comes back 97x61 uint8; deploy/infer.py writes the same image (the same
    path) and the dygraph model (config + weights, no export) agrees within one level."""
    folder, config, weights, overrides = models[name]
    out = ppir.load(folder)(PHOTO)
    assert out.shape == PHOTO.shape and out.dtype == np.uint8
    src = tmp_path / "photo.png"
    from ppir.data.image_io import read_image, write_image

    write_image(str(src), PHOTO)
    proc = run_tool("deploy/infer.py", "--model_dir", folder, "--input", str(src), "--output", str(tmp_path / "o.png"))
    assert proc.returncode == 0, proc.stderr
    deployed = np.round(read_image(str(tmp_path / "o.png")) * 255).astype(int)
    assert np.abs(deployed - out).max() <= 1
    eager = ppir.load(config, weights, overrides=overrides)(str(src))
    assert np.abs(eager.astype(int) - out).max() <= 1


def test_inpainting_keeps_known_pixels_and_matches_deploy(models, tmp_path):
    """MISF on a 97x61 photo with a two-part hole: known pixels are the input's bytes, the hole is
    filled, and deploy/infer.py --mask writes the same image; tools/predict.py --mask (dygraph)
    agrees within one level."""
    from ppir.data.image_io import read_image, write_image

    folder, config, weights, overrides = models["misf"]
    mask = hole_mask(*PHOTO.shape[:2])
    out = ppir.load(folder)(PHOTO, mask=mask)
    assert out.shape == PHOTO.shape
    assert np.array_equal(out[~mask], PHOTO[~mask])
    assert not np.array_equal(out[mask], PHOTO[mask])
    write_image(str(tmp_path / "photo.png"), PHOTO)
    write_image(str(tmp_path / "hole.png"), (mask * 255).astype(np.uint8))
    proc = run_tool("deploy/infer.py", "--model_dir", folder, "--input", str(tmp_path / "photo.png"),
                    "--mask", str(tmp_path / "hole.png"), "--output", str(tmp_path / "o.png"))
    assert proc.returncode == 0, proc.stderr
    deployed = np.round(read_image(str(tmp_path / "o.png")) * 255).astype(int)
    assert np.abs(deployed - out).max() <= 1
    proc = run_tool("tools/predict.py", "-c", config, "-o", *overrides, f"Global.pretrained_model={weights}",
                    "--input", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "hole.png"),
                    "--output", str(tmp_path / "p.png"))
    assert proc.returncode == 0, proc.stderr
    predicted = np.round(read_image(str(tmp_path / "p.png")) * 255).astype(int)
    assert np.abs(predicted - out).max() <= 1 and np.array_equal(predicted[~mask], PHOTO[~mask])


def test_every_mask_encoding_gives_the_same_result(models, tmp_path):
    """bool, 0/1, 0/255, 16-bit, RGB, opaque RGBA, a file, and the inverted mask with
    mask_hole_value='black' all mean the same hole."""
    from ppir.data.image_io import write_image

    model = ppir.load(models["misf"][0])
    mask = hole_mask(*PHOTO.shape[:2])
    ref = model(PHOTO, mask=mask)
    u8 = mask.astype(np.uint8)
    write_image(str(tmp_path / "m.png"), u8 * 255)
    encodings = [u8, u8 * 255, mask.astype(np.uint16) * 65535, np.repeat((u8 * 255)[..., None], 3, 2),
                 np.dstack([u8 * 255] * 3 + [np.full_like(u8, 255)]), mask.astype(np.float32), str(tmp_path / "m.png")]
    for enc in encodings:
        assert np.array_equal(model(PHOTO, mask=enc), ref)
    assert np.array_equal(model(PHOTO, mask=~mask, mask_hole_value="black"), ref)


def test_tiny_images_are_padded_up(models):
    """A 7x5 image (the inpainting graphs reflect-pad by more than that inside) is padded up to
    the minimum side and cropped back; the known pixels stay."""
    tiny = PHOTO[:7, :5]
    assert ppir.load(models["mirnetv2"][0])(tiny).shape == (7, 5, 3)
    mask = np.zeros((7, 5), bool)
    mask[2:5, 1:3] = True
    out = ppir.load(models["misf"][0])(tiny, mask=mask)
    assert out.shape == (7, 5, 3) and np.array_equal(out[~mask], tiny[~mask])


def test_a_list_runs_as_a_batch_and_matches_single_calls(models):
    """A list of images (two of one size, one of another) returns one result per image, each
    equal to the single call."""
    model = ppir.load(models["mirnetv2"][0], backend="paddle", enable_mkldnn=False)
    images = [PHOTO, PHOTO[::-1].copy(), PHOTO[:40, :33]]
    outs = model(images)
    assert [o.shape for o in outs] == [i.shape for i in images]
    for image, out in zip(images, outs):
        assert np.abs(model(image).astype(int) - out).max() <= 1


def test_progress_reports_every_tile(models):
    """progress=callable hears each tile of a tiled run, ending at the total; the tiled result has
    the input's size."""
    heard = []
    model = ppir.load(models["mirnetv2"][0], tile=32, tile_overlap=8)
    out = model(PHOTO, progress=lambda done, total, what: heard.append((done, total, what)))
    assert out.shape == PHOTO.shape
    assert heard and heard[-1][0] == heard[-1][1] > 1 and {h[2] for h in heard} == {"tiles"}
    assert [h[0] for h in heard] == list(range(1, heard[-1][1] + 1))


@pytest.mark.parametrize("call, error, text", [
    (lambda m: m["misf"](PHOTO), DataError, "pass a mask"),
    (lambda m: m["misf"](PHOTO, mask=np.ones((5, 5), bool)), DataError, "5x5 but its image is 61x97"),
    (lambda m: m["misf"](PHOTO, mask=np.zeros(PHOTO.shape[:2], bool)), DataError, "marks no hole"),
    (lambda m: m["misf"](PHOTO, mask=np.random.default_rng(0).random((97, 61, 3))), DataError, "channels differ"),
    (lambda m: m["mirnetv2"](PHOTO, mask=hole_mask(97, 61)), DataError, "takes no mask"),
    (lambda m: m["mirnetv2"]("no/such/photo.png"), DataError, "no/such/photo.png"),
    (lambda m: m["mirnetv2"](np.zeros((4, 4, 2), np.uint8)), DataError, "HxWx3"),
    (lambda m: m["mirnetv2"](PHOTO, n_samples=2), ConfigError, "ICT options"),
])
def test_failures_are_one_line_ppir_errors(models, call, error, text):
    """Each misuse raises a ppir error whose one line names the problem."""
    loaded = {name: ppir.load(folder) for name, (folder, *_) in models.items()}
    with pytest.raises(error) as info:
        call(loaded)
    assert isinstance(info.value, PpirError) and text in str(info.value) and "\n" not in str(info.value)


def test_load_refuses_what_is_not_a_model(models, tmp_path):
    """ppir.load on a file, a folder without inference.yml, a config without weights, or a tile
    the model cannot take: one-line ppir errors before anything runs."""
    from ppir.errors import ExportError

    with pytest.raises(ExportError, match="missing inference.yml"):
        ppir.load(str(tmp_path))
    with pytest.raises(ConfigError, match="pass its weights too"):
        ppir.load(models["misf"][1])
    with pytest.raises(ConfigError, match="multiple of 4"):
        ppir.load(models["mirnetv2"][0], tile=30)
    with pytest.raises(ConfigError, match="smaller than --tile"):
        ppir.load(models["mirnetv2"][0], tile=32, tile_overlap=32)


def test_the_api_page_examples_run_as_written(models, tmp_path, monkeypatch, capsys):
    """Every python block of docs/api.md runs, in order, in a folder holding the exports it names
    (the ICT block needs an ICT export: tests/test_ict_pipeline.py runs that API)."""
    import re

    from ppir.data.image_io import write_image

    (tmp_path / "inference").mkdir()
    for name in ("mirnetv2", "misf"):
        os.symlink(models[name][0], tmp_path / "inference" / f"{name}_demo")
    write_image(str(tmp_path / "photo.png"), PHOTO)
    write_image(str(tmp_path / "hole.png"), (hole_mask(*PHOTO.shape[:2]) * 255).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    namespace = {}
    ran = 0
    for block in blocks:
        if "inference/ict_demo" in block:
            continue
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 (our own page)
        ran += 1
    assert ran >= 4
    assert "inpaints: pass a mask" in capsys.readouterr().out
