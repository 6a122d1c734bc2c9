"""The seeds' released weights convert and reproduce the seeds' own code (issue 19).

Each `*_port.npz` fixture under tests/fixtures/seeds/ was made in a scratch environment by
running the port's own code, outside this repository, on weights from `seeded_value` (one numpy
stream per parameter name): the input, the port's output, and the port's parameter names and
shapes. A test rebuilds the port's checkpoint file from those names, converts it with
tools/convert_weights.py and checks that the ppir network computes the port's output (mean abs
diff <= 1e-5, max within 100x).

* `mimounet_ms_port.npz`: mindspore-ai/models research/cv/MIMO-UNet (`src/mimo_unet.py`,
  MIMOUNet(num_res=1)) under MindSpore 2.10.0, its removed `nn.ResizeBilinear` restored as its
  last implementation (ResizeBilinearV2, align_corners=False, half_pixel_centers=False).
* `mirnetv2_sldyns_port.npz`: sldyns/MIRNetV2_paddle `networks/MIRNet_V2_model.py`,
  MIRNet_v2(n_feat=16) (three RRGs), under Paddle 3.2.2.
* `ctsdg_ms_port.npz`: mindspore-ai/models research/cv/CTSDG (`src/generator/generator.py`
  Generator(), full width, 128x128; `src/generator/vgg16.py` VGG16FeatureExtractor, 32x32) under
  MindSpore 2.10.0, its removed `ops.ResizeBilinear` restored the same way. The outputs are
  kept every 4th pixel (and every 4th VGG channel) to keep the fixture small; the inputs are
  regenerated from their seed (`_ctsdg_inputs`).
* `ict_ms_port.npz`: the ICT MindSpore port's GPT (`Transformer/models/networks.py`, GELU2,
  2 layers of width 32, 64 tokens, vocab 64), its guided upsampler `Generator(residual_blocks=1)`
  and the VGG19 of its losses, under MindSpore 2.10.0 (VGG19 features kept every 8th channel).
* `ms_toy_train.*`: MindSpore's naming conventions (see test_convert_readers.py).
"""
import importlib.util
import json
import os
from collections import OrderedDict

import numpy as np
import paddle
import pytest
from paddle import nn

from ppir.errors import CheckpointError
from ppir.models import build_network
from ppir.models.convert import convert_state_dict
from ppir.utils.mindspore_ckpt import parse_ckpt, read_ckpt
from tests.conftest import assert_reprod_close, encode_ckpt, seeded_value

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "tests", "fixtures", "seeds")


def _tool():
    spec = importlib.util.spec_from_file_location(
        "convert_weights", os.path.join(ROOT, "tools", "convert_weights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _port(name):
    data = np.load(os.path.join(SEEDS, name))
    shapes = json.loads(str(data["shapes"]))
    weights = OrderedDict((str(n), seeded_value(str(n), s)) for n, s in zip(data["names"], shapes))
    return data, weights


def _convert(tmp_path, capsys, src, *args):
    dst = tmp_path / "converted.pdparams"
    assert _tool().main(["--src", str(src), "--dst", str(dst), *args]) == 0
    return paddle.load(str(dst)), capsys.readouterr().out


class _MSToy(nn.Layer):
    """Paddle twin of the MindSpore cell in ms_toy_train.ckpt (same attribute names)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2D(4)
        self.convT = nn.Conv2DTranspose(4, 2, 4, stride=2, padding=1)
        self.ln = nn.LayerNorm(8, epsilon=1e-5)
        self.dense = nn.Linear(8, 5)

    def forward(self, img, idx):
        return (self.convT(nn.functional.relu(self.bn(self.conv(img)))),
                self.dense(self.ln(self.emb(idx))))


def test_mindspore_conventions_reproduce_the_cell():
    """MindSpore's names and layouts map onto Paddle's: BatchNorm gamma/beta/moving_mean/
    moving_variance, LayerNorm gamma/beta, Embedding embedding_table, Dense [out, in],
    Conv2dTranspose [in, out, k, k]. The training cell's `net.` prefix is selected by param_key;
    Adam's moments, counters and append_dict entries are skipped and listed in one note; the
    converted twin computes what MindSpore computed."""
    ref = np.load(os.path.join(SEEDS, "ms_toy_train.npz"))
    net = _MSToy()
    notes = []
    state = convert_state_dict("Toy", read_ckpt(os.path.join(SEEDS, "ms_toy_train.ckpt")),
                               net=net, source="mindspore", param_key="net", notes=notes)
    missing, unexpected = net.set_state_dict(state)
    assert not missing and not unexpected
    assert len(notes) == 1 and notes[0].startswith("skipped 28 non-network entries")
    assert "moment1.net.emb.embedding_table" in notes[0]
    net.eval()
    out_img, out_tok = net(paddle.to_tensor(ref["img"]), paddle.to_tensor(ref["idx"]))
    np.testing.assert_allclose(out_img.numpy(), ref["out_img"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out_tok.numpy(), ref["out_tok"], rtol=0, atol=1e-5)
    with pytest.raises(CheckpointError, match="no network parameters under 'network.'"):
        convert_state_dict("Toy", read_ckpt(os.path.join(SEEDS, "ms_toy_train.ckpt")), net=net,
                           source="mindspore", param_key="network")


def test_mimounet_mindspore_port(tmp_path, capsys):
    """A MIMO-UNet .ckpt of the MindSpore port converts with the official names and, with
    resample=mindspore_bilinear, reproduces the port's three outputs; the official nearest
    resampling does not (so the switch is what makes a MindSpore-trained file usable). The
    converter detects the format and says which resampling the weights need; float16 entries
    (the fp16/O3 release) are widened with a note."""
    data, weights = _port("mimounet_ms_port.npz")
    src = tmp_path / "MIMO-UNet_3000_1_fp16_o3_dls.ckpt"
    half = OrderedDict((k, v.astype(np.float16) if k.startswith("Encoder.0.") else v)
                       for k, v in weights.items())
    src.write_bytes(encode_ckpt(weights))
    state, out = _convert(tmp_path, capsys, src, "--arch", "MIMOUNet",
                          "--network-args", '{"num_res": 1}')
    assert "mindspore format" in out and "resample: mindspore_bilinear" in out
    x = paddle.to_tensor(data["input"])
    for resample, close in (("mindspore_bilinear", True), ("nearest", False)):
        net = build_network({"name": "MIMOUNet", "num_res": 1, "resample": resample})
        missing, unexpected = net.set_state_dict(state)
        assert not missing and not unexpected
        net.eval()
        outs = [o.numpy() for o in net(x)]
        assert_reprod_close(outs[0], data["out_4"])  # 1/4 scale: no upsampling on its path
        if close:
            assert_reprod_close(outs[1], data["out_2"])
            assert_reprod_close(outs[2], data["out_1"])
        else:
            assert np.abs(outs[2] - data["out_1"]).mean() > 1e-4
    src.write_bytes(encode_ckpt(half))
    _, out = _convert(tmp_path, capsys, src, "--arch", "MIMOUNet", "--network-args",
                      '{"num_res": 1}', "--overwrite")
    assert "half-precision (float16) tensors widened" in out


def _ctsdg_inputs():
    """The inputs the CTSDG port fixture was computed on (numpy's PCG64 stream is stable)."""
    rng = np.random.default_rng(11)
    mask = np.ones((1, 1, 128, 128), np.float32)
    mask[:, :, 40:90, 30:100] = 0
    image = rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32) * mask
    edge = (rng.uniform(0, 1, (1, 2, 128, 128)) > 0.7).astype(np.float32) * mask
    vgg_input = rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    return image, edge, mask, vgg_input


def test_ctsdg_mindspore_port():
    """The CTSDG port's generator .ckpt (levels in CellLists, PartialConv2d wrapping a Conv2d,
    MSFA's dilated_convs list, BatchNorm gamma/beta/moving_*) converts to the official names and,
    with upsample_align_corners=True, reproduces the port's three outputs; the official
    align_corners=False resizes do not. (In memory: the full-width file is ~200 MB.)"""
    data, weights = _port("ctsdg_ms_port.npz")
    assert "ec_texture_layers.0.conv.conv.weight" in weights
    notes = []
    state = convert_state_dict("CTSDGGenerator", parse_ckpt(encode_ckpt(weights)),
                               source="mindspore", notes=notes)
    assert "upsample_align_corners: true" in notes[-1]
    image, edge, mask, _ = _ctsdg_inputs()
    inputs = [paddle.to_tensor(a) for a in (image, edge, mask)]
    for align_corners in (True, False):
        net = build_network({"name": "CTSDGGenerator", "upsample_align_corners": align_corners})
        missing, unexpected = net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
        assert not missing and not unexpected
        net.eval()
        with paddle.no_grad():
            outs = [o.numpy()[..., ::4, ::4] for o in net(*inputs)]
        for ours, key in zip(outs, ("output", "projected_image", "projected_edge")):
            if align_corners:
                assert_reprod_close(ours, data[key])
            else:
                assert np.abs(ours - data[key]).mean() > 1e-4


def test_ctsdg_mindspore_vgg16(tmp_path):
    """CTSDG's vgg16_feat_extr_ms.ckpt (torchvision's features[:17] as enc_1/enc_2/enc_3 with
    indices restarting at 0) loads directly as Model.vgg_weights: a 3-block VGG16 whose pool1,
    pool2 and pool3 are the port's."""
    from ppir.models.archs.vgg_arch import build_vgg

    data = np.load(os.path.join(SEEDS, "ctsdg_ms_port.npz"))
    shapes = json.loads(str(data["vgg_shapes"]))
    src = tmp_path / "vgg16_feat_extr_ms.ckpt"
    src.write_bytes(encode_ckpt(OrderedDict(
        (str(n), seeded_value(str(n), s)) for n, s in zip(data["vgg_names"], shapes))))
    vgg = build_vgg("VGG16", str(src))
    assert vgg.blocks == 3
    feats = vgg(paddle.to_tensor(_ctsdg_inputs()[3]), ["pool1", "pool2", "pool3"])
    for name in ("pool1", "pool2", "pool3"):
        assert_reprod_close(feats[name].numpy()[:, ::4], data[f"vgg_{name}"])
    with pytest.raises(Exception, match=r"VGG16 \(3 blocks\) has no layer 'relu4_1'"):
        vgg(paddle.to_tensor(_ctsdg_inputs()[3]), ["relu4_1"])


def _ict_weights(data, prefix):
    shapes = json.loads(str(data[prefix + "shapes"]))
    return OrderedDict((str(n), seeded_value(str(n), s))
                       for n, s in zip(data[prefix + "names"], shapes))


def test_ict_mindspore_port(tmp_path):
    """The ICT port's transformer (official names; LayerNorm gamma/beta, Embedding
    embedding_table, Dense [out, in], the attention `mask` Parameter dropped) reproduces the
    port's logits; its upsampler reproduces the port with resblock_second_pad=replicate and not
    with the official reflect padding; its VGG19.ckpt (`relu<b>_<i>.<k>` cells) loads as a
    VGG19 whose features are the port's."""
    from ppir.models.archs.vgg_arch import build_vgg

    data = np.load(os.path.join(SEEDS, "ict_ms_port.npz"))
    gpt = build_network({"name": "ICTTransformer", "vocab_size": 64, "block_size": 64,
                         "n_layer": 2, "n_head": 4, "n_embd": 32})
    weights = _ict_weights(data, "gpt_")
    assert "blocks.0.attn.mask" in weights and "tok_emb.embedding_table" in weights
    gpt.set_state_dict(convert_state_dict("ICTTransformer", parse_ckpt(encode_ckpt(weights)),
                                          net=gpt, source="mindspore"))
    gpt.eval()
    logits, _ = gpt(paddle.to_tensor(data["gpt_idx"].astype("int64")),
                    masks=paddle.to_tensor(data["gpt_mask"]))
    assert_reprod_close(logits.numpy(), data["gpt_logits"])

    mask = data["up_mask"]
    x = paddle.to_tensor(np.concatenate([data["up_image"] * (1 - mask) + mask,
                                         data["up_prior"]], axis=1))
    ckpt = parse_ckpt(encode_ckpt(_ict_weights(data, "up_")))
    for pad in ("replicate", "reflect"):
        up = build_network({"name": "ICTUpsampler", "residual_blocks": 1,
                            "resblock_second_pad": pad})
        notes = []
        up.set_state_dict(convert_state_dict("ICTUpsampler", ckpt, net=up, source="mindspore",
                                             notes=notes))
        assert "resblock_second_pad: replicate" in notes[-1]
        up.eval()
        if pad == "replicate":
            assert_reprod_close(up(x).numpy(), data["up_output"])
        else:
            assert np.abs(up(x).numpy() - data["up_output"]).mean() > 1e-5

    src = tmp_path / "VGG19.ckpt"
    src.write_bytes(encode_ckpt(_ict_weights(data, "vgg_")))
    vgg = build_vgg("VGG19", str(src))
    names = ["relu1_1", "relu2_2", "relu3_4", "relu4_4", "relu5_2"]
    feats = vgg(paddle.to_tensor(data["vgg_input"]), names)
    for name in names:
        assert_reprod_close(feats[name].numpy()[:, ::8], data[f"vgg_{name}"])


def test_mirnetv2_sldyns_release(tmp_path, capsys):
    """sldyns/MIRNetV2_paddle's model_best.pdparams ({'epoch', 'state_dict', 'optimizer'}, three
    RRGs at n_feat=16 here, 64 in the release) converts without --network-args: the depth and
    width are read off the file and reported, the optimizer and epoch are listed as ignored, and
    MIRNetV2 with n_RRG=3 reproduces the port's output."""
    data, weights = _port("mirnetv2_sldyns_port.npz")
    net = build_network({"name": "MIRNetV2", "n_feat": 16, "n_RRG": 3})
    assert list(net.state_dict()) == list(weights)  # same names, same order as the port
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    opt = paddle.optimizer.Adam(parameters=net.parameters())
    src = tmp_path / "model_best.pdparams"
    paddle.save({"epoch": 20, "state_dict": net.state_dict(), "optimizer": opt.state_dict()},
                str(src))
    state, out = _convert(tmp_path, capsys, src, "--arch", "MIRNetV2")
    assert "paddle format" in out and "read off the file: n_RRG=3, n_feat=16" in out
    assert "ignored: epoch, optimizer" in out
    fresh = build_network({"name": "MIRNetV2", "n_feat": 16, "n_RRG": 3})
    missing, unexpected = fresh.set_state_dict(state)
    assert not missing and not unexpected
    fresh.eval()
    with paddle.no_grad():
        assert_reprod_close(fresh(paddle.to_tensor(data["input"])).numpy(), data["output"])


def test_mirnetv2_n_rrg_is_honoured():
    """n_RRG builds that many RRGs with groups 1, 2, 4, 4, ... (the default 4 is the official
    network); a non-positive value is a ConfigError naming the argument."""
    from ppir.errors import ConfigError

    three = build_network({"name": "MIRNetV2", "n_feat": 16, "n_RRG": 3})
    assert len(three.body) == 3
    assert [rrg.body[0].dau_top.body[0]._groups for rrg in three.body] == [1, 2, 4]
    assert len(build_network({"name": "MIRNetV2", "n_feat": 16}).body) == 4
    with pytest.raises(ConfigError, match="n_RRG must be a positive integer"):
        build_network({"name": "MIRNetV2", "n_feat": 16, "n_RRG": 0})


def test_convert_checks_arch_before_reading_src(tmp_path, capsys):
    """An unknown --arch is reported before --src is opened (a missing --src is not mentioned)."""
    from ppir.errors import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(_tool().main, ["--arch", "MIRNetv2", "--src", str(tmp_path / "absent.pth"),
                               "--dst", str(tmp_path / "out.pdparams")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--arch: unknown network 'MIRNetv2'" in err and "absent.pth" not in err


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(ROOT, "configs", "seeds"))))
def test_seed_configs_build(name):
    """Every seed evaluation config resolves, its network builds with the port's switch, and its
    metrics (the seed's definitions next to the paper's) are valid."""
    from ppir.config import load_config
    from ppir.metrics import METRICS

    cfg = load_config(os.path.join(ROOT, "configs", "seeds", name))
    model = cfg["Model"]
    spec = model.get("network") or next(iter(model["networks"].values()))
    net = build_network(spec)
    switches = {"MIMOUNet": ("resample", "mindspore_bilinear"),
                "CTSDGGenerator": ("upsample_align_corners", True), "MIRNetV2": ("n_RRG", 3),
                "ICTUpsampler": ("resblock_second_pad", "replicate")}
    key, value = switches[spec["name"]]
    assert spec[key] == value
    if spec["name"] == "MIRNetV2":
        assert len(net.body) == 3 and spec["n_feat"] == 64
    for metric in cfg["Eval"]["metrics"]:
        METRICS.build(dict(metric))
