"""ICT's two training stages as task models, and the prior they share with inference.

* `ICTTransformerModel` (network `transformer`): the BERT-style transformer over palette tokens,
  trained as raywzy/ICT `Transformer/DDP_trainer.py` does: the model's own loss (cross-entropy at
  missing positions), AdamW, gradient clipping and the token-driven LR schedule
  (ppir.engine.lr_scheduler.TokenWarmupCosineLR, fed here with each batch's token count).
  Its `predict` samples the missing tokens and returns the bicubic-upsampled prior composited
  into the known pixels: the stage-1 result.
* `ICTUpsamplerModel` (networks `generator`, `discriminator`): the guided upsampler and its
  PatchGAN discriminator, trained on degraded ground-truth priors
  (`Guided_Upsample/src/models.py`).
* `ICTModel` (networks `transformer`, `generator`, `discriminator`): both stages in one config,
  each trained by its own stage's step on the same batches; `predict` is the whole pipeline and
  tools/export.py writes both stages' graphs into one folder (`export_graphs`).
"""
from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn as nn

from ppir.data.ict_data import prior_tokens, resolve_palette, upsample_prior
from ppir.errors import ConfigError, DataError, ExportError
from ppir.models import MODELS
from ppir.models.base_model import ExportGraph, TaskModel, graph_input
from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens
from ppir.models.misf_model import MISFModel
from ppir.utils.tiling import crop_back, pad_to_multiple

__all__ = ["ICTTransformerModel", "ICTUpsamplerModel", "ICTModel", "ICTLogits", "ICTRowLogits",
           "ICTUpsample", "upsampler_input"]


class ICTLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T] (1 = missing) -> logits [B, T, V]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    INPUTS = [("tokens", [None, None], "int64"), ("masks", [None, None], "float32")]

    def forward(self, tokens, masks):
        return self.net(tokens, None, masks)[0]


class ICTRowLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T], positions int64 [P] -> logits [B, P, V]: the
    logits at `positions` only (ICTTransformer.logits_at: the last block, the final LayerNorm
    and the head run at those positions), the rows sampling reads. The graph ICT deploys."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    INPUTS = [("tokens", [None, None], "int64"), ("masks", [None, None], "float32"),
              ("positions", [None], "int64")]

    def forward(self, tokens, masks, positions):
        return self.net.logits_at(tokens, masks, positions)


@MODELS.register("ICTTransformerModel")
class ICTTransformerModel(TaskModel):
    """Stage 1 of ICT: `networks: {transformer: {name: ICTTransformer, ...}}`.

    Args:
        networks: the one network `transformer`.
        palette: palette file or recipe (ppir.data.ict_data.resolve_palette); its colour count
            must equal the transformer's vocab_size.
        prior_size: s, the side of the token grid (block_size = s * s).
        top_k, temperature: sampling settings of `predict` (the official run.py: 40, 1.0).
        sample_seed: seed of `predict`'s draws (the same seed, the same completion).

    Training batches need `tokens` (int64 [B, s*s], the ground truth) and `token_mask`
    (float [B, s*s], 1 = missing), as ppir.data.ict_data.ICTTokenDataset gives them.
    """

    def __init__(self, networks, palette, prior_size=32, top_k=40, temperature=1.0,
                 sample_seed=0):
        if not isinstance(networks, dict) or set(networks) != {"transformer"}:
            raise ConfigError(f"ICTTransformerModel: Model.networks needs exactly one network, "
                              f"'transformer', got {list(networks or ())}")
        super().__init__(networks)
        self.prior_size = int(prior_size)
        self.palette = resolve_palette(palette, "Model.palette")
        if len(self.palette) != self.net.vocab_size:
            raise ConfigError(f"Model.palette has {len(self.palette)} colours but "
                              f"transformer.vocab_size is {self.net.vocab_size}")
        if self.prior_size ** 2 > self.net.block_size:
            raise ConfigError(f"Model.prior_size {self.prior_size}: {self.prior_size ** 2} tokens "
                              f"exceed transformer.block_size {self.net.block_size}")
        self.top_k, self.temperature, self.sample_seed = top_k, float(temperature), sample_seed

    def train_step(self, batch, step):
        tokens, masks = batch["tokens"], batch["token_mask"]
        with step.autocast():
            _, loss = self.net(tokens, targets=tokens, masks=masks)
        step.backward(loss)
        schedule = step.schedulers.get("transformer")
        if hasattr(schedule, "count"):  # TokenWarmupCosineLR: `tokens += (x >= 0).sum()`
            schedule.count(tokens.size)
        if not step.step("transformer"):
            return None
        return {"loss": float(loss)}

    def sample(self, image, mask, n_samples=1, seed=None, logits_fn=None):
        """Sampled token grids (n_samples, s*s) for one CHW image and its 1xHxW mask; `logits_fn`
        (default: this dygraph transformer) may be an exported predictor
        (a ppir.inference predictor of the ICTRowLogits graph)."""
        tokens, missing = prior_tokens(image, mask, self.palette, self.prior_size)
        seed = self.sample_seed if seed is None else seed
        if logits_fn is not None:
            return sample_tokens(logits_fn, tokens, missing, n_samples, self.top_k,
                                 self.temperature, seed)
        was_training = self.net.training
        try:  # paddle_logits_fn puts the network in eval mode
            return sample_tokens(paddle_logits_fn(self.net), tokens, missing, n_samples,
                                 self.top_k, self.temperature, seed)
        finally:
            if was_training:
                self.net.train()

    @paddle.no_grad()
    def predict(self, inputs):
        """The stage-1 completion of a 1x3xHxW `input` with its 1x1xHxW `mask` (1 = hole): the
        sampled prior, bicubic-upsampled, in the holes; the known pixels kept."""
        image, mask = inputs["input"].numpy()[0], inputs["mask"].numpy()[0]
        prior = self.prior(image, mask)
        return paddle.to_tensor((image * (1 - mask) + prior * mask)[None])

    def prior(self, image, mask):
        """The first sampled prior of one CHW image and its 1xHxW mask, bicubic-upsampled to the
        image size (3xHxW [0, 1]), as the upsampler takes it."""
        tokens = self.sample(image, mask)[0]
        return upsample_prior(tokens, self.palette, self.prior_size, image.shape[1:])

    def export_module(self):
        return ICTLogits(self.net)

    def io_spec(self):
        """Not a standalone deployment: the sampling loop needs the upsampler too, and the graph
        takes tokens, not images. Both stages are exported together (ICTModel.export_graphs)."""
        raise ExportError("ICT's transformer is exported together with its upsampler: use "
                          "tools/ict_export.py, or tools/export.py with an ICTModel config "
                          "(see docs/models/ict.md)")


def upsampler_input(images, masks, prior):
    """The official 6-channel input: the image with its holes set to 1 (white), then the prior."""
    return paddle.concat([images * (1 - masks) + masks, prior], axis=1)


class ICTUpsample(nn.Layer):
    """The exported upsampler: (image [0, 1], mask 1 = hole, prior [0, 1] at the image size) ->
    the composite `image * (1 - M) + G(input) * M` in [0, 1]. H and W multiples of 4."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image, mask, prior):
        return image * (1 - mask) + self.generator(upsampler_input(image, mask, prior)) * mask


_UPSAMPLER_NETWORKS = {"generator": {"name": "ICTUpsampler"},
                       "discriminator": {"name": "MISFDiscriminator"}}


@MODELS.register("ICTUpsamplerModel")
class ICTUpsamplerModel(MISFModel):
    """Stage 2 of ICT: `networks: {generator: ICTUpsampler, discriminator: MISFDiscriminator}`
    (the EdgeConnect spectral-norm PatchGAN, the official `Discriminator(in_channels=3)`).

    Losses as `Guided_Upsample/src/models.py` with config_template.yml weights (MISFModel's
    terms): `L1(out, gt) / mean(M)`, perceptual 0.1 (VGG19 relu1_1..5_1), style 250 on
    (out*M, gt*M), nsgan 0.1; D loss `(real + fake) / 2`. The update order is the official one,
    the usual one: D steps first on (gt, detached out), then G against the updated D. G's
    adversarial backward also reaches D, whose gradients are cleared before its next step.

    Batches need `target`, `mask` (1 = hole) and `prior` (3xHxW [0, 1]; in training the degraded
    ground truth of ppir.data.ict_data.ICTPriorDataset, at inference the transformer's sample).
    """

    size_multiple = 4

    def __init__(self, networks=None, vgg_weights=None, l1_weight=1.0, perceptual_weight=0.1,
                 style_weight=250.0, adversarial_weight=0.1, gan_type="nsgan", **layers):
        super().__init__(networks or _UPSAMPLER_NETWORKS, vgg_weights, l1_weight,
                         perceptual_weight, style_weight, adversarial_weight, gan_type, **layers)

    def train_step(self, batch, step):
        images, masks, prior = batch["target"], batch["mask"], batch["prior"]
        gen, dis = self.networks["generator"], self.networks["discriminator"]
        step.zero_grad("generator", "discriminator")
        with step.autocast():
            outputs = gen(upsampler_input(images, masks, prior))
            dis_real, _ = dis(images)
            dis_fake, _ = dis(outputs.detach())
            dis_loss = (self.gan(dis_real, True, True) + self.gan(dis_fake, False, True)) / 2
        step.backward(dis_loss)
        dis_ok = step.step("discriminator")
        with step.autocast():
            gen_fake, _ = dis(outputs)
            terms = self.generator_terms(outputs, images, masks, gen_fake)
            gen_loss = sum(terms.values())
        step.backward(gen_loss)
        gen_ok = step.step("generator")
        return self.logged(gen_ok and dis_ok, gen_loss, dis_loss, terms)

    @paddle.no_grad()
    def predict(self, inputs):
        """The composite for NCHW `input`, `mask` (1 = hole) and `prior` of any size (reflect-padded
        to a multiple of 4 and cropped back)."""
        if "prior" not in inputs:
            raise DataError("ICTUpsamplerModel.predict needs a `prior` (the transformer's sample, "
                            "or ICTPriorDataset's degraded ground truth)")
        stacked, hw = pad_to_multiple(
            paddle.concat([inputs["input"], inputs["mask"], inputs["prior"]], axis=1),
            self.size_multiple)
        out = ICTUpsample(self.networks["generator"])(stacked[:, :3], stacked[:, 3:4], stacked[:, 4:])
        return crop_back(out, hw)

    def export_module(self):
        return ICTUpsample(self.networks["generator"])

    def io_spec(self):
        spec = super().io_spec()
        spec["inputs"].append(graph_input("prior", 3))
        spec.pop("pad_square", None)
        return spec


_STAGES = {"transformer": ("transformer",), "upsampler": ("generator", "discriminator")}


@MODELS.register("ICTModel")
class ICTModel(TaskModel):
    """ICT's two stages in one task model: `networks: {transformer: ICTTransformer, generator:
    ICTUpsampler, discriminator: MISFDiscriminator}` (primary: the transformer).

    Each training step runs ICTTransformerModel's step, then ICTUpsamplerModel's step, on the
    same batch: the two official objectives side by side, each network with its own optimizer.
    The official recipe trains them separately, on different crops, masks and batch sizes (the
    stage configs); this joint form exists so that one config trains, evaluates and exports the
    whole pipeline (demo, TIPC).

    Args:
        networks: the three networks.
        palette, prior_size, top_k, temperature, sample_seed: as ICTTransformerModel.
        n_samples: completions per image of an export's default sampling (deploy/infer.py).
        **upsampler: ICTUpsamplerModel's loss settings (vgg_weights, l1_weight, ...).

    Batches need `target`, `mask`, `prior` (ICTPriorDataset) and `tokens`, `token_mask` (the
    `ict_tokens` host step on the same sample).
    """

    export_networks = ("transformer", "generator")  # what tools/export.py must find weights for

    def __init__(self, networks, palette, prior_size=32, top_k=40, temperature=1.0,
                 sample_seed=0, n_samples=1, **upsampler):
        names = set(networks or ())
        expected = {n for stage in _STAGES.values() for n in stage}
        if not isinstance(networks, dict) or names != expected:
            raise ConfigError(f"ICTModel: Model.networks needs exactly {', '.join(sorted(expected))}, "
                              f"got {sorted(names)}")
        transformer = ICTTransformerModel({"transformer": networks["transformer"]}, palette,
                                          prior_size, top_k, temperature, sample_seed)
        stage2 = ICTUpsamplerModel({n: networks[n] for n in _STAGES["upsampler"]}, **upsampler)
        self._join(transformer, stage2, n_samples)

    @classmethod
    def from_stages(cls, transformer, upsampler, n_samples=1, sample_seed=None):
        """The joint model around two built stage models (their networks are shared);
        `sample_seed` replaces the transformer's."""
        if sample_seed is not None:
            transformer.sample_seed = sample_seed
        model = cls.__new__(cls)
        model._join(transformer, upsampler, n_samples)
        return model

    def _join(self, transformer, upsampler, n_samples):
        self.transformer, self.upsampler = transformer, upsampler
        self.n_samples = int(n_samples)
        self.networks = OrderedDict([("transformer", transformer.net)]
                                    + [(n, upsampler.networks[n]) for n in _STAGES["upsampler"]])

    def set_train(self, training):
        self.transformer.set_train(training)
        self.upsampler.set_train(training)

    def train_step(self, batch, step):
        first = self.transformer.train_step(batch, step)
        second = self.upsampler.train_step(batch, step)
        if first is None or second is None:
            return None
        return {"transformer_loss": first["loss"], **second}

    @paddle.no_grad()
    def predict(self, inputs):
        """The whole pipeline on a 1x3xHxW `input` and its 1x1xHxW `mask` (1 = hole): the
        transformer's sampled prior (seed `sample_seed`), upsampled into the holes."""
        prior = self.transformer.prior(inputs["input"].numpy()[0], inputs["mask"].numpy()[0])
        return self.upsampler.predict({"input": inputs["input"], "mask": inputs["mask"],
                                       "prior": paddle.to_tensor(prior[None])})

    def export_module(self):
        raise ExportError("ICTModel exports two graphs, not one: tools/export.py calls "
                          "export_graphs")

    def io_spec(self):
        """The images a deployment takes (the prior is made inside, by the transformer)."""
        spec = self.upsampler.io_spec()
        spec["inputs"] = [i for i in spec["inputs"] if i["name"] != "prior"]
        return spec

    # Exported graphs are checked to 1e-4: logits reach ~10-30 and the upsampler's composite sums
    # ~1e3 products per pixel, so fp32 reassociation across kernels moves them by ~1e-5..1e-4.
    EXPORT_ATOL = 1e-4

    def export_graphs(self):
        """The two graphs a deployment runs: the transformer's row logits graph (one sampling
        step: tokens, masks, positions -> logits at positions; ONNX-convertible, timed on one
        step of `n_samples` rows) and the upsampler (image, mask, prior -> composite; timed at
        256x256). Check inputs are seeded by the transformer's `sample_seed`."""
        transformer = self.transformer
        rng = np.random.default_rng(transformer.sample_seed)
        side = transformer.prior_size
        tokens = rng.integers(0, len(transformer.palette), (max(2, self.n_samples), side * side)).astype(np.int64)
        masks = (rng.random(tokens.shape) < 0.4).astype(np.float32)
        positions = np.flatnonzero(masks[0]).astype(np.int64)
        step = {"tokens": tokens[:self.n_samples], "masks": masks[:self.n_samples], "positions": positions[:1]}
        logits = ExportGraph(
            ICTRowLogits(transformer.net), ICTRowLogits.INPUTS, subdir="transformer", atol=self.EXPORT_ATOL,
            check_feeds=[{"tokens": tokens, "masks": masks, "positions": positions}],
            tune_feeds=[([side, side], step)])

        def upsampler_feeds(h, w):
            mask = np.zeros((1, 1, h, w), np.float32)
            mask[:, :, h // 4:3 * h // 4, w // 5:3 * w // 4] = 1
            return {"image": rng.random((1, 3, h, w)).astype(np.float32), "mask": mask,
                    "prior": rng.random((1, 3, h, w)).astype(np.float32)}

        upsampler = ExportGraph(
            ICTUpsample(self.upsampler.networks["generator"]),
            [("image", [None, 3, None, None], "float32"), ("mask", [None, 1, None, None], "float32"),
             ("prior", [None, 3, None, None], "float32")],
            subdir="upsampler", atol=self.EXPORT_ATOL, onnx=False,
            check_feeds=[upsampler_feeds(36, 44)], tune_feeds=[([256, 256], upsampler_feeds(256, 256))])
        return {"transformer": logits, "upsampler": upsampler}

    def deploy_spec(self, export_dir):
        """inference.yml of the two-stage export (`task: ict`); writes the palette beside it."""
        import os

        from ppir.data.palette import palette_to_file_format

        transformer = self.transformer
        np.save(os.path.join(export_dir, "palette.npy"), palette_to_file_format(transformer.palette))
        spec = self.io_spec()
        spec.update({
            "task": "ict", "model_name": "ICT", "pad_multiple": self.upsampler.size_multiple,
            "stages": {
                "transformer": {"palette_file": "palette.npy", "prior_size": transformer.prior_size,
                                "top_k": transformer.top_k, "temperature": float(transformer.temperature)},
                "upsampler": {},
            },
            "sampling": {"n_samples": int(self.n_samples), "seed": int(transformer.sample_seed)},
        })
        return spec
