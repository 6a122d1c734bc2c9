"""ICT port (transformer prior + guided upsampler): sizes, official keys, checkpoint conversion and
numerics against the official PyTorch code.

The fixture tests/fixtures/ict_align.npz was produced in scratch by the official classes
(raywzy/ICT: `Transformer/models/model.py` GPT, `Guided_Upsample/src/networks.py`
InpaintGenerator_5; torch 2.13 CPU, eval mode) with weights made by `seeded_state` below. It holds
the official state-dict key lists (small configs, the FFHQ release config and the upsampler), the
parameter counts of the three released transformer configs (built on torch's meta device), the
inputs and the official logits / losses / upsampler output.
"""
import os
import zlib

import numpy as np
import paddle
import pytest

from ppir.errors import CheckpointError, ConfigError
from ppir.models import build_network
from ppir.models.archs.ict_arch import ICTTransformer, ICTUpsampler, transformer_num_params
from ppir.models.convert import convert_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "ict_align.npz")

RELEASED = {  # Transformer/README + run.py: (n_layer, n_embd, prior size); n_head 8, BERT, GELU2
    "imagenet": (35, 1024, 32),
    "ffhq": (30, 512, 48),
    "places2_nature": (35, 512, 32),
}


def seeded_state(shapes, seed, gain=1.0):
    """Deterministic official-layout (torch) weights, identical in torch and numpy.

    Each tensor has its own generator `default_rng([seed, crc32(key)])`. Embeddings and the start
    token are N(0, 1); other >= 2-D tensors N(0, gain^2 / fan_in), fan_in = prod(shape[1:]);
    1-D weights (LayerNorm) 1 + 0.1 N(0, 1); biases 0.1 N(0, 1). The `attn.mask` buffers keep the
    official tril and are not generated.
    """
    out = {}
    for key, shape in shapes.items():
        if key.endswith(".attn.mask"):
            continue
        z = np.random.default_rng([seed, zlib.crc32(key.encode())]).standard_normal(shape)
        if key in ("pos_emb", "tok_emb.weight", "sos"):
            value = z
        elif len(shape) >= 2:
            value = gain * z / np.sqrt(np.prod(shape[1:]))
        elif key.endswith("weight"):
            value = 1.0 + 0.1 * z
        else:
            value = 0.1 * z
        out[key] = value.astype(np.float32)
    return out


def official_shapes(keys):
    """{key: shape} from the fixture's 'key:d0,d1,...' strings (official order)."""
    out = {}
    for entry in keys:
        key, dims = str(entry).split(":")
        out[key] = tuple(int(d) for d in dims.split(","))
    return out


def official_state(keys, seed, gain=1.0):
    """A numpy official-format state dict, tril `attn.mask` buffers included."""
    shapes = official_shapes(keys)
    state = seeded_state(shapes, seed, gain)
    for key, shape in shapes.items():
        if key.endswith(".attn.mask"):
            state[key] = np.tril(np.ones(shape[-2:], np.float32)).reshape(shape)
    return {k: state[k] for k in shapes}


def load_converted(net, arch, release):
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in
                        convert_state_dict(arch, release, net=net).items()})
    return net


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURE)


def small_config(fx, BERT=True):
    return dict(block_size=int(fx["gpt_block_size"]), n_layer=int(fx["gpt_n_layer"]),
                n_head=int(fx["gpt_n_head"]), n_embd=int(fx["gpt_n_embd"]), embd_pdrop=0.0,
                resid_pdrop=0.0, attn_pdrop=0.0, BERT=BERT, use_gelu2=BERT)


def test_upsampler_size_and_official_keys(fx):
    """The default ICTUpsampler is InpaintGenerator_5(residual_blocks=8): 10,780,867 parameters and
    the official 44 keys with the official shapes, in the official order."""
    sd = build_network({"name": "ICTUpsampler"}).state_dict()
    assert sum(int(v.size) for v in sd.values()) == 10_780_867 == int(fx["up_params"])
    got = [k + ":" + ",".join(str(d) for d in v.shape) for k, v in sd.items()]
    assert len(got) == 44 and got == [str(k) for k in fx["up_keys"]]


def test_transformer_keys_are_official_minus_mask_buffers(fx):
    """The FFHQ release config (30 x 512, 48 x 48) has the official keys and shapes (Linear weights
    transposed) except the 30 `attn.mask` buffers: 515 official keys, 485 here."""
    official = official_shapes(fx["ffhq_keys"])
    assert len(official) == 515
    n_layer, n_embd, s = RELEASED["ffhq"]
    with paddle.LazyGuard():
        net = ICTTransformer(block_size=s * s, n_layer=n_layer, n_embd=n_embd)
    linear = {f"{n}.weight" for n, m in net.named_sublayers() if isinstance(m, paddle.nn.Linear)}
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    expected = {k: (v[::-1] if k in linear else v) for k, v in official.items()
                if not k.endswith(".attn.mask")}
    assert len(got) == 485 and list(got) == list(expected) and got == expected


@pytest.mark.parametrize("tag", sorted(RELEASED))
def test_released_config_parameter_counts(fx, tag):
    """The three released configs have the official parameter counts (ImageNet 442,967,040, FFHQ
    96,276,480, Places2_Nature 111,383,040), counted on a lazily built network (nothing
    allocated) and by `transformer_num_params`."""
    n_layer, n_embd, s = RELEASED[tag]
    cfg = dict(block_size=s * s, n_layer=n_layer, n_embd=n_embd)
    with paddle.LazyGuard():
        net = ICTTransformer(**cfg)
    counted = sum(int(np.prod(p.shape)) for p in net.parameters())
    assert counted == transformer_num_params(**cfg) == int(fx[f"{tag}_params"])


@pytest.mark.parametrize("BERT", [True, False])
def test_num_params_formula_matches_built_network(BERT):
    """`transformer_num_params` equals the built network's count, with and without the causal
    start token (`sos`, only when BERT is False)."""
    cfg = dict(block_size=16, n_layer=2, n_head=2, n_embd=8, vocab_size=20, BERT=BERT)
    net = ICTTransformer(**cfg)
    assert sum(int(p.size) for p in net.parameters()) == transformer_num_params(**cfg)
    assert ("sos" in net.state_dict()) is not BERT


def test_official_init():
    """Official init: Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm (1, 0), pos_emb
    zeros; upsampler conv weights N(0, 0.02) and zero biases."""
    paddle.seed(0)
    net = ICTTransformer(block_size=16, n_layer=2, n_embd=64, n_head=4)
    sd = net.state_dict()
    assert np.abs(sd["blocks.0.attn.key.weight"].numpy().std() - 0.02) < 0.003
    assert np.abs(sd["tok_emb.weight"].numpy().std() - 0.02) < 0.002
    assert not sd["blocks.1.mlp.0.bias"].numpy().any() and not sd["pos_emb"].numpy().any()
    assert (sd["ln_f.weight"].numpy() == 1).all() and not sd["ln_f.bias"].numpy().any()
    up = ICTUpsampler(residual_blocks=1).state_dict()
    assert np.abs(up["middle.0.conv_block.1.weight"].numpy().std() - 0.02) < 0.001
    assert not up["decoder.0.bias"].numpy().any()


def test_transformer_matches_official_forward(fx):
    """BERT mode with GELU2 (the released setting): the converted official weights give the
    official logits (mean abs diff <= 1e-5; measured 2.2e-7, max 1.4e-6) and the official masked
    loss, both averaged over all tokens (default) and over masked tokens (`dynamic_weight`)."""
    seed = int(fx["weight_seed"])
    idx, tgt = paddle.to_tensor(fx["gpt_idx"]), paddle.to_tensor(fx["gpt_targets"])
    masks = paddle.to_tensor(fx["gpt_masks"])
    release = {"model": official_state(fx["bert_keys"], seed), "epoch": 3, "tokens": 10,
               "optimizer": {"state": {}}, "best_validation_loss": 1.0}
    for dynamic, ref in ((False, "bert_loss"), (True, "bert_loss_dynamic")):
        net = ICTTransformer(**small_config(fx), dynamic_weight=dynamic)
        load_converted(net, "ICTTransformer", release).eval()
        with paddle.no_grad():
            logits, loss = net(idx, tgt, masks)
        diff = np.abs(logits.numpy() - fx["bert_logits"])
        assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())
        np.testing.assert_allclose(loss.item(), fx[ref], rtol=1e-5)


def test_causal_transformer_matches_official_forward(fx):
    """BERT=False (the official autoregressive mode: start token, causal mask, exact GELU, plain
    mean cross-entropy) also matches the official logits and loss."""
    seed = int(fx["weight_seed"])
    keys = [k for k in fx["bert_keys"]] + ["sos:" + str(int(fx["gpt_n_embd"]))]
    net = ICTTransformer(**small_config(fx, BERT=False))
    load_converted(net, "ICTTransformer", official_state(keys, seed)).eval()
    with paddle.no_grad():
        logits, loss = net(paddle.to_tensor(fx["gpt_idx"]), paddle.to_tensor(fx["gpt_targets"]))
    diff = np.abs(logits.numpy() - fx["causal_logits"])
    assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())
    np.testing.assert_allclose(loss.item(), fx["causal_loss"], rtol=1e-5)


@pytest.mark.parametrize("BERT", [True, False])
def test_logits_at_equals_the_full_forward_at_those_rows(fx, BERT):
    """`logits_at` (the last block, final LayerNorm and head at the asked positions only) gives
    the rows of the full forward and of the official logits (max rel diff <= 1e-5 of the
    largest logit), in BERT and causal mode, for positions in any order."""
    seed = int(fx["weight_seed"])
    keys = list(fx["bert_keys"]) + ([] if BERT else ["sos:" + str(int(fx["gpt_n_embd"]))])
    net = ICTTransformer(**small_config(fx, BERT=BERT))
    load_converted(net, "ICTTransformer", official_state(keys, seed)).eval()
    idx = paddle.to_tensor(fx["gpt_idx"])
    masks = paddle.to_tensor(fx["gpt_masks"]) if BERT else None
    t = idx.shape[1]
    positions = np.array([t - 1, 0, t // 2], np.int64)
    with paddle.no_grad():
        full = net(idx, masks=masks)[0].numpy()
        rows = net.logits_at(idx, masks, paddle.to_tensor(positions)).numpy()
    official = fx["bert_logits" if BERT else "causal_logits"][:, positions]
    scale = np.abs(full).max()
    assert rows.shape == official.shape
    assert np.abs(rows - full[:, positions]).max() <= 1e-5 * scale
    assert np.abs(rows - official).max() <= 1e-5 * scale


def test_upsampler_matches_official_forward(fx):
    """InpaintGenerator_5 at 64 x 64 with converted official weights (`{'iteration',
    'generator'}` file, DataParallel `module.` prefixes) gives the official output."""
    state = official_state(fx["up_keys"], int(fx["weight_seed"]), float(fx["up_gain"]))
    release = {"iteration": 1000, "generator": {"module." + k: v for k, v in state.items()}}
    net = load_converted(ICTUpsampler(), "ICTUpsampler", release).eval()
    with paddle.no_grad():
        out = net(paddle.to_tensor(fx["up_input"])).numpy()
    diff = np.abs(out - fx["up_output"])
    assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())


def test_transformer_bare_state_dict_and_mask_buffers_dropped(fx):
    """A bare official state dict (the `.pt` case of inference.py) converts too: the `attn.mask`
    buffers are dropped, every Linear weight is transposed, the embeddings are not."""
    state = official_state(fx["bert_keys"], 1)
    net = ICTTransformer(**small_config(fx))
    out = convert_state_dict("ICTTransformer", state, net=net)
    assert sum(k.endswith("attn.mask") for k in state) == int(fx["gpt_n_layer"])
    assert not any(k.endswith("attn.mask") for k in out)
    assert np.array_equal(out["head.weight"], state["head.weight"].T)
    assert np.array_equal(out["blocks.1.attn.query.weight"], state["blocks.1.attn.query.weight"].T)
    assert np.array_equal(out["tok_emb.weight"], state["tok_emb.weight"])


def test_wrong_prior_size_is_refused(fx):
    """A checkpoint of another prior size (pos_emb shape) fails with a CheckpointError naming
    the key, instead of loading partially."""
    state = official_state(fx["bert_keys"], 1)
    net = ICTTransformer(**dict(small_config(fx), block_size=32))
    with pytest.raises(CheckpointError, match="pos_emb"):
        convert_state_dict("ICTTransformer", {"model": state}, net=net)


def test_bert_needs_masks_and_block_size_is_enforced():
    """BERT mode without `masks` and sequences longer than block_size raise ValueError instead of
    the official AttributeError / assert."""
    net = ICTTransformer(block_size=8, n_layer=1, n_embd=8, n_head=2)
    with pytest.raises(ValueError, match="masks"):
        net(paddle.zeros([1, 8], "int64"))
    with pytest.raises(ValueError, match="block_size"):
        net(paddle.zeros([1, 9], "int64"), masks=paddle.zeros([1, 9]))


def test_missing_tokens_are_ignored():
    """With a position marked missing, its token id has no effect on any logit (the zero token
    embedding); a known position's id does."""
    paddle.seed(1)
    net = ICTTransformer(block_size=8, n_layer=1, n_embd=16, n_head=2)
    net.eval()
    idx = paddle.to_tensor([[1, 2, 3, 4, 5, 6, 7, 8]], "int64")
    masks = paddle.to_tensor([[0, 0, 1, 0, 0, 0, 0, 0]], "float32")
    with paddle.no_grad():
        base, _ = net(idx, masks=masks)
        changed = idx.numpy().copy()
        changed[0, 2] = 100
        same, _ = net(paddle.to_tensor(changed), masks=masks)
        changed[0, 3] = 100
        other, _ = net(paddle.to_tensor(changed), masks=masks)
    assert np.array_equal(base.numpy(), same.numpy())
    assert not np.allclose(base.numpy(), other.numpy())


def test_upsampler_shapes_and_errors():
    """The upsampler maps [B, 6, H, W] to [B, 3, H, W] in [0, 1]; a size that is not a multiple of
    4 or a wrong channel count is a ValueError naming the shape, and a bad constructor keyword is
    a ConfigError."""
    net = ICTUpsampler(residual_blocks=1)
    net.eval()
    with paddle.no_grad():
        out = net(paddle.rand([2, 6, 12, 16]))
    assert out.shape == [2, 3, 12, 16]
    assert out.numpy().min() >= 0 and out.numpy().max() <= 1
    assert ICTUpsampler.size_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        net(paddle.rand([1, 6, 14, 16]))
    with pytest.raises(ValueError, match="with 6 channels"):
        net(paddle.rand([1, 3, 16, 16]))
    with pytest.raises(ConfigError, match="ICTUpsampler"):
        build_network({"name": "ICTUpsampler", "residual_block": 8})


class _LogitsOnly(paddle.nn.Layer):
    """The graph an export will hold: (tokens, masks) -> logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, idx, masks):
        return self.net(idx, None, masks)[0]


def test_static_export_with_dynamic_shapes(tmp_path):
    """Both networks export with to_static (batch, sequence length and image size left dynamic)
    and the saved programs reproduce dygraph (to float32 rounding) on a batch / length / size not fixed at
    export time."""
    from paddle.static import InputSpec

    paddle.seed(2)
    net = _LogitsOnly(ICTTransformer(block_size=16, n_layer=1, n_embd=16, n_head=2))
    net.eval()
    idx = paddle.to_tensor(np.arange(24).reshape(2, 12) % 512)
    masks = paddle.to_tensor((np.arange(24).reshape(2, 12) % 3 == 0).astype(np.float32))
    paddle.jit.save(paddle.jit.to_static(net, full_graph=True), str(tmp_path / "gpt"),
                    input_spec=[InputSpec([None, None], "int64"),
                                InputSpec([None, None], "float32")])
    loaded = paddle.jit.load(str(tmp_path / "gpt"))
    # The saved program may run other (equally correct) CPU kernels than dygraph (oneDNN on
    # AVX-512/AMX machines): equal up to float32 rounding over the longest reduction.
    _assert_same_up_to_rounding(loaded(idx, masks).numpy(), net(idx, masks).numpy(), reduction=4 * 16)

    up = ICTUpsampler(residual_blocks=1)
    up.eval()
    x = paddle.rand([1, 6, 12, 20])
    paddle.jit.save(paddle.jit.to_static(up, full_graph=True), str(tmp_path / "up"),
                    input_spec=[InputSpec([None, 6, None, None], "float32")])
    _assert_same_up_to_rounding(paddle.jit.load(str(tmp_path / "up"))(x).numpy(), up(x).numpy(),
                                reduction=256 * 3 * 3)


def _assert_same_up_to_rounding(got, want, reduction):
    """|got - want| within the float32 rounding bound of a `reduction`-term dot product (n u
    times the output scale), which two orders of summation may each reach."""
    bound = 2 * reduction * np.finfo(np.float32).eps * max(np.abs(want).max(), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)
