"""Tests for ppir/models/archs/ctsdg_arch.py: structure, official numerics, BatchNorm freezing.

`ctsdg_align.npz` was made in scratch with the official PyTorch `Generator` and `Discriminator`
of xiefan-guo/ctsdg (torch 2.13 CPU, eval mode). It holds:
* the official state-dict keys and shapes (`gen_keys`/`gen_shapes`, `dis_keys`/`dis_shapes`,
  shapes padded with -1); the official weights were filled by `_seeded_official_state` below
  (same code, seeds `gen_seed`/`dis_seed`), so nothing but the seeds is stored;
* inputs: skimage's astronaut photo bilinearly resized to 256x256 (uint8), its official
  Canny edge (sigma 2, bit-packed) and gray (official path, rounded to uint8); block + stroke
  masks (1 = known, bit-packed): one 256x256 mask, and two 128x256 masks for the photo's top
  and bottom halves run as a batch of two (non-square, batch > 1);
* official outputs on every `stride`-th pixel in both directions: the generator's
  `(output, projected_image, projected_edge)` and, for `D(image, gray, edge, True)` and
  `D(output, gray, edge, False)`, the predictions (all pixels) and the EdgeDetector maps.
"""
import os
import zlib

import numpy as np
import paddle
import pytest
from paddle import nn

from ppir.models import build_network
from ppir.models.archs.ctsdg_arch import (CTSDGGenerator, Feature2Texture, PartialConv2d,
                                          PConvBNActiv, freeze_batchnorm_stats)
from ppir.models.convert import convert_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _seeded_official_state(keys, shapes, seed):
    """Deterministic official-format weights: each tensor drawn from its own generator seeded by
    (seed, crc32(key)); He-scaled convs, BN stats near (0, 1), Bi-GFF gammas ~0.5 (the official
    zeros would hide the gate order), spectral-norm u/v from five power iterations."""
    out = {}
    for key, shape in zip(keys, shapes):
        shape = tuple(int(s) for s in shape)
        name = key.replace(".features.", ".conv1.")  # aliased module: one tensor, two names
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[key] = np.array(0, np.int64)
            continue
        if leaf == "running_mean":
            v = 0.1 * rng.standard_normal(shape)
        elif leaf == "running_var":
            v = rng.uniform(0.5, 1.5, shape)
        elif leaf.endswith("_gamma"):
            v = 0.5 + 0.1 * rng.standard_normal(shape)
        elif len(shape) == 4:
            v = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))
        elif leaf == "weight":
            v = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf == "bias":
            v = 0.05 * rng.standard_normal(shape)
        elif leaf in ("weight_u", "weight_v"):
            v = rng.standard_normal(shape)
        else:
            raise KeyError(key)
        out[key] = v
    for key in keys:
        if key.endswith(".weight_v"):
            prefix = key[: -len("weight_v")]
            w = out[prefix + "weight_orig"].reshape(out[prefix + "weight_orig"].shape[0], -1)
            v = out[key] / np.linalg.norm(out[key])
            for _ in range(5):
                u = w @ v
                u = u / np.linalg.norm(u)
                v = w.T @ u
                v = v / np.linalg.norm(v)
            u = w @ v
            out[key] = v
            out[prefix + "weight_u"] = u / np.linalg.norm(u)
    return {k: (v if v.dtype == np.int64 else v.astype(np.float32)) for k, v in out.items()}


def _shapes(rows):
    return [[int(s) for s in row if s >= 0] for row in rows]


def _trainable(net):
    """Parameter count as PyTorch reports it (Paddle also lists BN running stats as
    non-trainable parameters)."""
    return sum(int(p.size) for p in net.parameters() if not p.stop_gradient)


def _paddle_name(key):
    return key.replace(".running_mean", "._mean").replace(".running_var", "._variance")


@pytest.fixture(scope="module")
def align():
    return dict(np.load(os.path.join(FIXTURES, "ctsdg_align.npz")))


@pytest.fixture(scope="module")
def official_file(align):
    """An official training state `{'n_iter', 'generator', 'discriminator'}` built with numpy."""
    gen = _seeded_official_state([str(k) for k in align["gen_keys"]],
                                 _shapes(align["gen_shapes"]), int(align["gen_seed"]))
    dis = _seeded_official_state([str(k) for k in align["dis_keys"]],
                                 _shapes(align["dis_shapes"]), int(align["dis_seed"]))
    return {"n_iter": 300000, "generator": gen, "discriminator": dis}


@pytest.fixture(scope="module")
def nets(official_file):
    gen = build_network({"name": "CTSDGGenerator"})
    dis = build_network({"name": "CTSDGDiscriminator"})
    for arch, net in (("CTSDGGenerator", gen), ("CTSDGDiscriminator", dis)):
        missing, unexpected = net.set_state_dict(convert_state_dict(arch, official_file, net=net))
        assert not missing and not unexpected
        net.eval()
    return gen, dis


def _inputs(align, case):
    img, gray = align["image_u8"], align["gray_u8"]
    edge = np.unpackbits(align["edge_bits"])[:256 * 256].reshape(256, 256).astype(bool)
    if case == "full":
        mask = np.unpackbits(align["mask_full_bits"])[:256 * 256].reshape(1, 256, 256)
        img, gray, edge = img[None], gray[None], edge[None]
    else:
        mask = np.unpackbits(align["mask_half_bits"])[:2 * 128 * 256].reshape(2, 128, 256)
        img, gray, edge = img.reshape(2, 128, 256, 3), gray.reshape(2, 128, 256), \
            edge.reshape(2, 128, 256)
    # The official ToTensor + Normalize((0.5,)*3, (0.5,)*3), in float32.
    image = (img.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    to = paddle.to_tensor
    return (to(image.transpose(0, 3, 1, 2)), to((gray.astype(np.float32) / 255)[:, None]),
            to(edge.astype(np.float32)[:, None]), to(mask.astype(np.float32)[:, None]))


def _assert_reprod_close(ours, official, name, threshold=1e-5):
    """Compare like the reprod_log alignment reports: mean abs diff within `threshold`."""
    from reprod_log import ReprodDiffHelper

    helper = ReprodDiffHelper()
    helper.compare_info({name: official}, {name: ours})
    mean_diff = helper.diff_dict[name]["mean"]
    assert mean_diff <= threshold, f"{name}: mean abs diff {mean_diff:.3e} > {threshold}"
    assert np.abs(ours - official).max() <= 100 * threshold, name


def test_sizes_and_keys_match_official(nets, align):
    """Generator 52,147,789 and discriminator 5,531,729 trainable parameters (the official
    counts); state-dict keys are the official ones in order (BN running stats renamed, the
    `num_batches_tracked` counters dropped) with the official shapes, including the spectral-norm
    `weight_orig/_u/_v` tensors and the discriminator's aliased `conv1.*`/`features.*` copies."""
    gen, dis = nets
    assert _trainable(gen) == 52_147_789
    assert _trainable(dis) == 5_531_729
    assert len(align["gen_keys"]) == 210 and len(align["dis_keys"]) == 59
    for net, keys, shapes in ((gen, align["gen_keys"], align["gen_shapes"]),
                              (dis, align["dis_keys"], align["dis_shapes"])):
        want = [(_paddle_name(str(k)), s) for k, s in zip(keys, _shapes(shapes))
                if not str(k).endswith("num_batches_tracked")]
        state = net.state_dict()
        assert list(state) == [k for k, _ in want]
        for key, shape in want:
            assert list(state[key].shape) == shape, key
    assert CTSDGGenerator.size_multiple == 128


def test_input_size_must_be_multiple_of_128(nets):
    """Heights or widths that are not multiples of 128 raise a ValueError naming the size."""
    gen, _ = nets
    with pytest.raises(ValueError, match="multiples of 128.*128x192"):
        gen(paddle.zeros([1, 3, 128, 192]), paddle.zeros([1, 2, 128, 192]),
            paddle.ones([1, 1, 128, 192]))


@pytest.mark.parametrize("case", ["full", "half"])
def test_matches_official_forward(nets, align, case):
    """With the same weights (converted from an official-format state), generator and
    discriminator reproduce the official outputs: mean abs diff <= 1e-5 on 256x256 (batch 1) and
    on 128x256 (batch 2, non-square), for the three generator outputs and for both the real and
    the fake discriminator call."""
    gen, dis = nets
    image, gray, edge, mask = _inputs(align, case)
    s = int(align["stride"])
    with paddle.no_grad():
        output, projected_image, projected_edge = gen(
            image * mask, paddle.concat([edge * mask, gray * mask], axis=1), mask)
        d_real, fake_edge_real = dis(image, gray, edge, True)
        d_fake, fake_edge_fake = dis(output, gray, edge, False)
    for name, value, stride in (("output", output, s), ("projected_image", projected_image, s),
                                ("projected_edge", projected_edge, s),
                                ("fake_edge_real", fake_edge_real, s),
                                ("fake_edge_fake", fake_edge_fake, s),
                                ("d_real", d_real, 1), ("d_fake", d_fake, 1)):
        want = align[f"{case}_{name}"]
        got = value.numpy()[:, :, ::stride, ::stride]
        assert got.shape == want.shape, name
        _assert_reprod_close(got, want, f"{case}_{name}")
    assert float(output.std()) > 0.2  # weights give a non-trivial, unsaturated output


def test_convert_official_training_state(official_file, nets):
    """From an official `{'n_iter', 'generator', 'discriminator'}` file each arch takes its own
    state dict: BN running stats land in `_mean`/`_variance`, `num_batches_tracked` is dropped,
    spectral-norm tensors keep their names, and the aliased `conv1.*`/`features.*` copies carry
    the same values."""
    gen, dis = nets
    out_g = convert_state_dict("CTSDGGenerator", official_file, net=gen)
    out_d = convert_state_dict("CTSDGDiscriminator", official_file, net=dis)
    src_g, src_d = official_file["generator"], official_file["discriminator"]
    assert len(out_g) == 180 and len(out_d) == 56
    assert not any(k.endswith("num_batches_tracked") for k in list(out_g) + list(out_d))
    np.testing.assert_array_equal(out_g["ec_texture_2.bn._variance"],
                                  src_g["ec_texture_2.bn.running_var"])
    np.testing.assert_array_equal(out_g["bigff.texture_gamma"], src_g["bigff.texture_gamma"])
    for leaf in ("weight_orig", "weight_u", "weight_v"):
        key = f"structure_branch.conv3.0.{leaf}"
        np.testing.assert_array_equal(out_d[key], src_d[key])
        np.testing.assert_array_equal(out_d[f"texture_branch.conv1.0.{leaf}"],
                                      out_d[f"texture_branch.features.0.{leaf}"])
    np.testing.assert_array_equal(out_d["edge_detector.res_layer.4._mean"],
                                  src_d["edge_detector.res_layer.4.running_mean"])


def test_convert_weights_cli_picks_discriminator(official_file, tmp_path, monkeypatch):
    """`tools/convert_weights.py --arch CTSDGDiscriminator` on an official training state writes a
    .pdparams holding the 'discriminator' entry that loads with no missing/unexpected keys
    (the .pth reader is replaced by the in-memory official file: no torch needed)."""
    import importlib.util

    import ppir.models.convert as convert

    monkeypatch.setattr(convert, "read_weights", lambda path: (official_file, "torch"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "convert_weights", os.path.join(root, "tools", "convert_weights.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    dst = tmp_path / "ctsdg_d.pdparams"
    assert tool.main(["--arch", "CTSDGDiscriminator", "--src", "official.pth",
                      "--dst", str(dst)]) == 0
    dis = build_network({"name": "CTSDGDiscriminator"})
    missing, unexpected = dis.set_state_dict(paddle.load(str(dst)))
    assert not missing and not unexpected
    np.testing.assert_array_equal(
        dis.texture_branch.conv2[0].weight_orig.numpy(),
        official_file["discriminator"]["texture_branch.conv2.0.weight_orig"])


def test_partial_conv_is_stateless():
    """A partial conv's result depends only on this call's mask: calling it first with another
    mask (the official layer caches the ratio) changes nothing, and the hole-ratio rescaling
    matches the definition out = conv(x*m) * (in*k*k / count) on windows that see any pixel."""
    paddle.seed(0)
    conv = PartialConv2d(2, 4, 3, padding=1, bias=False, multi_channel=True)
    x = paddle.randn([1, 2, 8, 8])
    mask = paddle.ones([1, 2, 8, 8])
    mask[:, :, 2:6, 3:7] = 0.0
    other = paddle.zeros([1, 2, 8, 8])
    other[:, :, :4] = 1.0
    fresh, fresh_mask = conv(x, mask)
    conv(x, other)
    again, again_mask = conv(x, mask)
    np.testing.assert_array_equal(fresh.numpy(), again.numpy())
    np.testing.assert_array_equal(fresh_mask.numpy(), again_mask.numpy())
    count = nn.functional.conv2d(mask, paddle.ones([1, 2, 3, 3]), padding=1).numpy()
    raw = nn.functional.conv2d(x * mask, conv.weight, padding=1).numpy()
    want = np.where(count > 0, raw * 18 / np.maximum(count, 1e-8), 0.0)
    np.testing.assert_allclose(fresh.numpy(), want, rtol=1e-5, atol=1e-5)
    assert fresh_mask.shape == [1, 4, 8, 8]
    np.testing.assert_array_equal(fresh_mask.numpy()[0, 0], (count[0, 0] > 0).astype(np.float32))


class _Tiny(nn.Layer):
    """A partial-conv block and a projection head: the generator's BatchNorm-bearing parts."""

    def __init__(self):
        super().__init__()
        self.block = PConvBNActiv(3, 64, sample="down-3")
        self.head = Feature2Texture()

    def forward(self, x, mask):
        feat, _ = self.block(x, mask)
        return self.head(feat)


def test_freeze_batchnorm_stats_keeps_running_stats_but_trains_affine():
    """After `freeze_batchnorm_stats`, an optimizer step leaves every BN running mean/variance
    unchanged while BN weights and biases still move. A plain `train()` on a container undoes
    the freeze (Paddle does not call sublayer overrides), which is why the function exists."""
    paddle.seed(0)
    wrapper = nn.Sequential(_Tiny())
    net = wrapper[0]
    bns = [layer for layer in net.sublayers() if isinstance(layer, nn.BatchNorm2D)]
    assert len(bns) == 3
    freeze_batchnorm_stats(wrapper)
    wrapper.train()
    assert all(bn.training for bn in bns)  # the Paddle pitfall
    freeze_batchnorm_stats(wrapper)
    assert not any(bn.training for bn in bns) and net.head.out_layer[0].training

    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    opt = paddle.optimizer.Adam(1e-2, parameters=net.parameters())
    x, mask = paddle.randn([2, 3, 16, 16]), paddle.ones([2, 3, 16, 16])
    loss = (net(x, mask) - 0.3).abs().mean()
    loss.backward()
    opt.step()
    after = net.state_dict()
    for key, value in before.items():
        changed = not np.array_equal(value, after[key].numpy())
        if key.endswith(("._mean", "._variance")):
            assert not changed, key
        elif ".bn" in key or "bn1" in key or "bn2" in key:
            assert changed, key


def test_generator_train_override_freezes_batchnorm(nets):
    """`CTSDGGenerator.train()` with `freeze_ec_bn = True` (official fine-tuning switch) leaves
    every BatchNorm in eval mode and the rest in training mode; without it all layers train."""
    gen, _ = nets
    bns = [layer for layer in gen.sublayers() if isinstance(layer, nn.BatchNorm2D)]
    assert len(bns) == 30
    try:
        gen.freeze_ec_bn = True
        gen.train()
        assert not any(bn.training for bn in bns) and gen.out_layer.training
        gen.freeze_ec_bn = False
        gen.train()
        assert all(bn.training for bn in bns)
    finally:
        gen.freeze_ec_bn = False
        gen.eval()


def test_spectral_norm_power_iteration_only_in_training_mode():
    """The discriminator's spectral-norm vectors `weight_u` update on every training-mode call
    and stay fixed in eval mode (they belong in the checkpoint, as in PyTorch)."""
    paddle.seed(0)
    dis = build_network({"name": "CTSDGDiscriminator"})
    conv = dis.texture_branch.conv2[0]
    x = paddle.randn([1, 3, 32, 32])
    dis.eval()
    u0 = conv.weight_u.numpy().copy()
    dis.texture_branch(x)
    np.testing.assert_array_equal(conv.weight_u.numpy(), u0)
    dis.train()
    dis.texture_branch(x)
    u1 = conv.weight_u.numpy().copy()
    assert not np.array_equal(u1, u0)
    dis.texture_branch(x)
    assert not np.array_equal(conv.weight_u.numpy(), u1)


def test_official_init_distribution():
    """Official `weights_init`: generator conv weights N(0, 0.02) with zero bias, BN weights
    N(1, 0.02); Bi-GFF gammas start at 0; discriminator branch weights N(0, 0.02)."""
    paddle.seed(0)
    gen = build_network({"name": "CTSDGGenerator"})
    w = gen.dc_texture_7.conv.weight.numpy()
    assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
    bn = gen.dc_texture_7.bn.weight.numpy()
    assert abs(bn.mean() - 1.0) < 0.005 and 0.01 < bn.std() < 0.03
    assert not gen.fusion_layer2[0].bias.numpy().any()
    assert not gen.bigff.texture_gamma.numpy().any() and not gen.bigff.structure_gamma.numpy().any()
    dis = build_network({"name": "CTSDGDiscriminator"})
    assert abs(dis.structure_branch.conv4[0].weight_orig.numpy().std() - 0.02) < 0.001
