"""ICT task models: the transformer stage's training step against the official one, its
token-driven LR schedule (exact resume), token data, and seeded sampling.

tests/fixtures/ict_train_steps.npz was made in scratch by the official training step of raywzy/ICT
(`Transformer/DDP_trainer.py` run_epoch without DDP: `model(x, x, y)`, `configure_optimizers`
AdamW with betas (0.9, 0.95) and weight_decay 0, `clip_grad_norm_(1.0)`, then the token-count LR
rule), torch 2.13 CPU, on the 2-layer x 64 BERT config of tests/fixtures/ict_align.npz with the
weights of tests/test_ict_arch.py `seeded_state` (seed `weight_seed`): 6 steps of 2 x 64 random
tokens with about 40 % missing, learning rate 1e-3, warmup_tokens 256, final_tokens 1024. It holds
the batches, the official losses and learning rates per step, and slices of the final weights.
"""
import os

import numpy as np
import paddle
import pytest
from reprod_log import ReprodDiffHelper, ReprodLogger

from ppir.engine.amp import NoAmp
from ppir.engine.lr_scheduler import build_optimizers
from ppir.engine.step import TrainStep
from ppir.models import build_model
from ppir.models.convert import convert_state_dict
from tests.test_ict_arch import official_state

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PALETTE = np.stack(np.meshgrid(np.arange(8) * 32, np.arange(8) * 32, np.arange(8) * 32,
                               indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
SMALL = {"name": "ICTTransformer", "vocab_size": 512, "block_size": 64, "n_layer": 2, "n_head": 4,
         "n_embd": 64, "embd_pdrop": 0.0, "resid_pdrop": 0.0, "attn_pdrop": 0.0}
TRAIN_CFG = {"Optimizer": {"name": "AdamW", "beta1": 0.9, "beta2": 0.95, "epsilon": 1e-8,
                           "weight_decay": 0.0, "grad_clip": 1.0},
             "LRScheduler": {"name": "TokenWarmupCosineLR", "learning_rate": 1e-3,
                             "warmup_tokens": 256, "final_tokens": 1024}}


def small_model(seed=None):
    model = build_model({"Model": {"name": "ICTTransformerModel", "palette": PALETTE,
                                   "prior_size": 8, "networks": {"transformer": SMALL}}})
    if seed is not None:
        keys = np.load(os.path.join(FIXTURES, "ict_align.npz"))["bert_keys"]
        state = convert_state_dict("ICTTransformer", official_state(keys, seed), net=model.net)
        model.net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    return model


def run_steps(model, tokens, masks, optimizers=None, schedulers=None):
    """Train on the given batches; returns (losses, learning rates used, optimizers, schedulers)."""
    if optimizers is None:
        optimizers, schedulers = build_optimizers(TRAIN_CFG, model)
    step = TrainStep(model.networks, optimizers, NoAmp(), schedulers=schedulers)
    model.set_train(True)
    losses, lrs = [], []
    for x, y in zip(tokens, masks):
        lrs.append(optimizers["transformer"].get_lr())
        logged = model.train_step({"tokens": paddle.to_tensor(x), "token_mask": paddle.to_tensor(y)},
                                  step)
        losses.append(logged["loss"])
        schedulers["transformer"].step()
    return np.array(losses), np.array(lrs), optimizers, schedulers


def test_training_steps_match_the_official_training_step(tmp_path):
    """6 steps of the official loss + AdamW (0.9, 0.95, no decay) + clip 1.0 + token LR rule from
    the same weights and batches give the official losses and learning rates (reprod_log, mean
    diff <= 1e-5) and the same final weights (1e-5)."""
    ref = np.load(os.path.join(FIXTURES, "ict_train_steps.npz"))
    model = small_model(int(ref["weight_seed"]))
    losses, lrs, _, _ = run_steps(model, ref["tokens"], ref["masks"])
    ours, theirs = ReprodLogger(), ReprodLogger()
    for i in range(len(losses)):
        ours.add(f"loss_{i}", losses[i:i + 1])
        ours.add(f"lr_{i}", lrs[i:i + 1])
        theirs.add(f"loss_{i}", ref["losses"][i:i + 1])
        theirs.add(f"lr_{i}", ref["lrs"][i:i + 1])
    ours.save(str(tmp_path / "paddle.npy"))
    theirs.save(str(tmp_path / "ref.npy"))
    helper = ReprodDiffHelper()
    helper.compare_info(helper.load_info(str(tmp_path / "paddle.npy")),
                        helper.load_info(str(tmp_path / "ref.npy")))
    helper.report(diff_method="mean", diff_threshold=1e-5, path=str(tmp_path / "diff.txt"))
    assert "diff check passed" in (tmp_path / "diff.txt").read_text()
    np.testing.assert_allclose(losses, ref["losses"], rtol=1e-5, atol=0)
    np.testing.assert_allclose(lrs, ref["lrs"], rtol=1e-12, atol=0)
    # Paddle stores the head as (in, out): the official (out, in) rows are its columns.
    np.testing.assert_allclose(model.net.head.weight.numpy().T[:8], ref["final_head"], atol=1e-5)
    np.testing.assert_allclose(model.net.pos_emb.numpy()[0, :4], ref["final_pos"], atol=1e-5)


def test_token_schedule_resumes_exactly():
    """Saving the optimizer after 3 of 6 steps and resuming in a fresh model gives the learning
    rates and losses of the uninterrupted run: the token count travels with the optimizer state."""
    ref = np.load(os.path.join(FIXTURES, "ict_train_steps.npz"))
    full_losses, full_lrs, _, _ = run_steps(small_model(3), ref["tokens"], ref["masks"])
    # Each half in fresh names (parameters and optimizer moments), as a new process would be.
    with paddle.utils.unique_name.guard():
        first = small_model(3)
        _, _, optimizers, _ = run_steps(first, ref["tokens"][:3], ref["masks"][:3])
    saved_net, saved_opt = first.net.state_dict(), optimizers["transformer"].state_dict()
    assert saved_opt["LR_Scheduler"]["tokens"] == 3 * 2 * 64
    with paddle.utils.unique_name.guard():
        second = small_model()
        second.net.set_state_dict(saved_net)
        optimizers, schedulers = build_optimizers(TRAIN_CFG, second)
        optimizers["transformer"].set_state_dict(saved_opt)
        losses, lrs, _, _ = run_steps(second, ref["tokens"][3:], ref["masks"][3:], optimizers,
                                      schedulers)
    np.testing.assert_array_equal(lrs, full_lrs[3:])
    np.testing.assert_allclose(losses, full_losses[3:], rtol=1e-6)


def test_token_schedule_first_step_at_full_rate_then_warmup_and_floor():
    """Step 1 runs at the full rate, then the rate follows the token count: linear warm-up, cosine,
    down to the 0.1 floor at final_tokens (DDP_trainer.py)."""
    from ppir.engine.lr_scheduler import TokenWarmupCosineLR

    sched = TokenWarmupCosineLR(1.0, warmup_tokens=100, final_tokens=300)
    got = [sched()]
    for _ in range(6):
        sched.count(50)
        sched.step()
        got.append(sched())
    np.testing.assert_allclose(got, [1.0, 0.5, 1.0, 0.5 * (1 + np.cos(np.pi * 0.25)), 0.5,
                                     0.5 * (1 + np.cos(np.pi * 0.75)), 0.1])


# -- guided upsampler -----------------------------------------------------------------------------

UPSAMPLER_OPTIM = {"Optimizer": {"generator": {"name": "Adam", "beta1": 0.0, "beta2": 0.9},
                                 "discriminator": {"name": "Adam", "beta1": 0.0, "beta2": 0.9}},
                   "LRScheduler": {"generator": 1.0e-4, "discriminator": 1.0e-5}}
UPSAMPLER_LOGGED = {"gen_loss": "gen_loss", "dis_loss": "dis_loss", "adv": "l_g2", "l1": "l_l1",
                    "perceptual": "l_per", "style": "l_sty"}


def upsampler_batches():
    """3 batches of 2: random 64x64 images, priors = image + noise, one 32x32 square hole each
    (the generator of the fixture's inputs)."""
    rng = np.random.default_rng(11)
    steps, batch, side = 3, 2, 64
    images = rng.random((steps, batch, 3, side, side), dtype=np.float32)
    priors = np.clip(images + 0.1 * rng.standard_normal(images.shape).astype(np.float32), 0, 1)
    masks = np.zeros((steps, batch, 1, side, side), np.float32)
    for s in range(steps):
        for b in range(batch):
            y, x = rng.integers(0, side // 2, 2)
            masks[s, b, 0, y:y + side // 2, x:x + side // 2] = 1
    return images, priors, masks


def upsampler_weights():
    """Every tensor from its key's seed (tests/test_misf_arch.py), D's aliased conv1/features."""
    from ppir.models import build_network
    from tests.test_misf_arch import seeded_state

    weights = {}
    for name in ("ICTUpsampler", "MISFDiscriminator"):
        net = build_network({"name": name})
        state = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, 1.0)
        state.update({k.replace("conv1.0.", "features.0."): v for k, v in state.items()
                      if k.startswith("conv1.0.")})
        weights[name] = {k: np.asarray(v, np.float32) for k, v in state.items()}
    return weights


@pytest.fixture(scope="module")
def vgg19(tmp_path_factory):
    from tests.test_misf_model import write_vgg

    return write_vgg(str(tmp_path_factory.mktemp("vgg") / "vgg19_seed0.pdparams"))


def test_upsampler_training_steps_match_the_official_training_step(vgg19):
    """3 steps of the official Guided_Upsample InpaintingModel.process (D stepped first, then G
    against the updated D; L1/mean(M), perceptual 0.1, style 250, nsgan 0.1; Adam (0, 0.9), D at
    0.1 x lr) from the same seeded weights, VGG19 and batches give the official losses: the first
    two steps within 1e-5 relative (measured <= 6e-6), the third within 5e-4 (measured 1.5e-4 on
    the style term: Adam with beta1 = 0 moves every parameter by about lr * sign(grad), so
    float-level gradient differences grow)."""
    ref = np.load(os.path.join(FIXTURES, "ict_upsampler_train_steps.npz"))
    model = build_model({"Model": {"name": "ICTUpsamplerModel", "vgg_weights": vgg19}})
    weights = upsampler_weights()
    model.networks["generator"].set_state_dict(weights["ICTUpsampler"])
    model.networks["discriminator"].set_state_dict(weights["MISFDiscriminator"])
    optimizers, _ = build_optimizers(UPSAMPLER_OPTIM, model)
    step = TrainStep(model.networks, optimizers, NoAmp())
    model.set_train(True)
    images, priors, masks = upsampler_batches()
    got = {k: [] for k in UPSAMPLER_LOGGED}
    for i in range(len(images)):
        logged = model.train_step({"target": paddle.to_tensor(images[i]),
                                   "prior": paddle.to_tensor(priors[i]),
                                   "mask": paddle.to_tensor(masks[i])}, step)
        for k in got:
            got[k].append(logged[k])
    for ours, theirs in UPSAMPLER_LOGGED.items():
        np.testing.assert_allclose(got[ours][:2], ref[theirs][:2], rtol=1e-5, err_msg=ours)
        np.testing.assert_allclose(got[ours], ref[theirs], rtol=5e-4, err_msg=ours)


@pytest.mark.parametrize("name, params", [("imagenet", 442_967_040), ("ffhq", 96_276_480),
                                          ("places2", 111_383_040)])
def test_released_configs_give_the_released_parameter_counts(name, params):
    """configs/ict_transformer_<name>.yml builds the released network (counted without
    allocating it), its prior size matches the block size, and the data is tokenised at that
    size with the official optimiser settings."""
    from ppir.config import load_config
    from ppir.models.archs.ict_arch import transformer_num_params

    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "configs",
                                   f"ict_transformer_{name}.yml"))
    net = dict(cfg["Model"]["networks"]["transformer"])
    assert transformer_num_params(**net) == params
    assert cfg["Model"]["prior_size"] ** 2 == net["block_size"]
    assert cfg["Train"]["dataset"]["prior_size"] == cfg["Model"]["prior_size"]
    assert cfg["Train"]["dataset"]["dataset"]["size"] == cfg["Model"]["prior_size"]
    opt = cfg["Optimizer"]
    assert (opt["name"], opt["beta1"], opt["beta2"], opt["weight_decay"], opt["grad_clip"]) == \
        ("AdamW", 0.9, 0.95, 0.0, 1.0)
    assert cfg["LRScheduler"]["name"] == "TokenWarmupCosineLR"


def test_transformer_data_tokenises_the_crop_and_its_mask(tmp_path):
    """ICTTokenDataset adds the palette tokens of the s x s ground truth and the s x s mask
    (1 = missing), the same as tokenising the sample's own arrays."""
    from ppir.data import build_dataset
    from ppir.data.ict_data import prior_tokens

    ds = build_dataset({"name": "ICTTokenDataset", "prior_size": 16,
                        "palette": {"images": "demo", "k": 16, "size": 16, "seed": 0},
                        "dataset": {"name": "DemoInpaintingDataset", "split": "train", "size": 16,
                                    "preprocess": "random_crop_resize", "hflip": True,
                                    "mask_recipe": "ict_transformer"}}, "Train.dataset")
    sample = ds[(3, None, 12)]
    tokens, missing = prior_tokens(sample["target"], sample["mask"], ds.palette, 16)
    np.testing.assert_array_equal(sample["tokens"], tokens)
    np.testing.assert_array_equal(sample["token_mask"], sample["mask"].reshape(-1))
    assert sample["tokens"].shape == (256,) and sample["tokens"].max() < 16
    assert 0 < sample["token_mask"].mean() < 1


def test_degraded_prior_nearest_and_random_degree():
    """The upsampler's training prior: with prior_random_degree 1 each pixel of the BILINEAR
    s x s image takes its nearest palette colour; with K > 1 one of its K nearest, drawn from the
    seed (same seed, same prior; another seed, another one)."""
    from PIL import Image

    from ppir.data.ict_data import degraded_tokens
    from ppir.data.palette import quantize

    rng = np.random.default_rng(0)
    image = rng.random((3, 32, 32)).astype(np.float32)
    small = np.asarray(Image.fromarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8))
                       .resize((8, 8), resample=Image.BILINEAR), np.float32).reshape(-1, 3)
    np.testing.assert_array_equal(degraded_tokens(image, PALETTE, 8), quantize(small, PALETTE))
    dist = ((small[:, None] - PALETTE[None]) ** 2).sum(-1)
    picked = degraded_tokens(image, PALETTE, 8, 3, np.random.default_rng(1))
    assert all(dist[i, t] <= np.sort(dist[i])[2] for i, t in enumerate(picked))
    np.testing.assert_array_equal(picked, degraded_tokens(image, PALETTE, 8, 3, np.random.default_rng(1)))
    assert (picked != degraded_tokens(image, PALETTE, 8, 3, np.random.default_rng(2))).any()


def test_generic_export_of_the_transformer_points_to_the_ict_exporter():
    """tools/export.py cannot deploy the transformer alone (tokens in, and sampling needs the
    upsampler): io_spec raises a one-line ExportError naming tools/ict_export.py."""
    from ppir.errors import ExportError

    with pytest.raises(ExportError, match="tools/ict_export.py"):
        small_model().io_spec()


def test_upsampler_output_depends_on_its_prior():
    """The guided upsampler must read its prior: two different priors give different fills in
    the holes (and the same known pixels). A collapsed generator (saturated tanh) gives the same
    image for every prior, which is how the demo's failure showed."""
    paddle.seed(0)
    model = build_model({"Model": {"name": "ICTUpsamplerModel", "vgg_weights": None, "perceptual_weight": 0.0,
                                   "style_weight": 0.0,
                                   "networks": {"generator": {"name": "ICTUpsampler", "residual_blocks": 1},
                                                "discriminator": {"name": "MISFDiscriminator"}}}})
    model.set_train(False)
    rng = np.random.default_rng(0)
    image = paddle.to_tensor(rng.random((1, 3, 16, 20)).astype(np.float32))
    mask = np.zeros((1, 1, 16, 20), np.float32)
    mask[..., 4:12, 5:15] = 1
    mask = paddle.to_tensor(mask)
    outs = [model.predict({"input": image, "mask": mask, "prior": paddle.full([1, 3, 16, 20], v)}).numpy()
            for v in (0.0, 1.0)]
    hole = mask.numpy().astype(bool).repeat(3, 1)
    np.testing.assert_array_equal(outs[0][~hole], outs[1][~hole])
    assert np.abs(outs[0] - outs[1])[hole].mean() > 1e-3
