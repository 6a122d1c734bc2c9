"""CTSDG as a task model: the generator and discriminator of xiefan-guo/ctsdg, their losses
(`criteria/loss.py`) and their training step (`trainer.py`).

Conventions, converted here and nowhere else: the data layer gives images in [0, 1] and masks
with 1 = hole; CTSDG takes images in [-1, 1] and masks with 1 = known pixel. Every sample also
carries `edge` = [Canny edge, gray] of the ground truth (the `ctsdg_edges` host step); the
generator sees it times the known mask, the losses compare against all of it.

One training iteration, in the official order (the discriminator's spectral-norm vectors and its
edge detector's BatchNorm statistics advance on each of its three training-mode calls):

1. generator forward; D(output) as fake with D's parameters frozen; generator loss
   hole 60, valid 10, perceptual 0.1, style 250, adversarial 0.1, intermediate 1; generator step;
2. D(ground truth) as real, D(output.detach()) as fake; discriminator loss
   BCE(real, 1) + BCE(fake, 0) + BCE(edge of real, edge) + BCE(edge of fake, edge); its step.

Perceptual and style losses use VGG16 `features[:5]`, `[5:10]`, `[10:17]` (pool1..pool3), fed the
[-1, 1] images without ImageNet normalisation, on both the raw output and the composite.
"""
from contextlib import contextmanager

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.data.host_steps import run_host_steps
from ppir.errors import ConfigError
from ppir.losses.gan_loss import GANLoss, binary_cross_entropy
from ppir.losses.perceptual import PerceptualLoss, StyleLoss
from ppir.metrics.inpainting import composite_with_hole_mask
from ppir.models.archs.ctsdg_arch import freeze_batchnorm_stats
from ppir.models.base_model import INPAINTING_TUNE_SIZES, TaskModel, graph_input, inpainting_io_spec
from ppir.registry import MODELS
from ppir.utils.tiling import crop_back, pad_to_multiple

# options/train_options.py
LOSS_WEIGHTS = {"hole": 60.0, "valid": 10.0, "perceptual": 0.1, "style": 250.0, "adversarial": 0.1,
                "intermediate": 1.0}
VGG_LAYERS = ("pool1", "pool2", "pool3")  # vgg16.features[:5], [5:10], [10:17]
DEFAULT_NETWORKS = {"generator": {"name": "CTSDGGenerator"},
                    "discriminator": {"name": "CTSDGDiscriminator"}}
# How edges are made when no ground truth is known (evaluation as deployed, export).
DEPLOY_EDGES = {"name": "ctsdg_edges", "source": "input", "sigma": 2.0, "official_wrap": True}


def to_ctsdg(image01, hole_mask):
    """Data-layer image ([0, 1]) and mask (1 = hole) -> CTSDG's image ([-1, 1]) and mask
    (1 = known pixel)."""
    return image01 * 2.0 - 1.0, 1.0 - hole_mask


@contextmanager
def frozen(net):
    """The official `requires_grad(net, False)`: no gradient reaches `net`'s parameters."""
    params = [p for p in net.parameters() if not p.stop_gradient]
    for p in params:
        p.stop_gradient = True
    try:
        yield
    finally:
        for p in params:
            p.stop_gradient = False


class CTSDGInference(nn.Layer):
    """What gets exported: (image [-1, 1] with anything in the holes, edge [edge, gray], mask
    1 = known) -> the composite `image * mask + output * (1 - mask)` in [-1, 1]. The masking of
    the inputs happens here, so a predictor needs no more than the host step's edges."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image, edge, mask):
        image = image * mask
        output, _, _ = self.generator(image, edge * mask, mask)
        return image + output * (1.0 - mask)


def build_vgg16(weights, seed):
    """The frozen VGG16 of the perceptual and style losses: converted ImageNet weights, or (tests,
    the demo) reproducible stand-in weights from `seed`."""
    from ppir.models.archs.vgg_arch import build_vgg, seeded_vgg_state, VGG16Features

    if weights:
        return build_vgg("VGG16", weights, where="Model.vgg_weights")
    if seed is None:
        raise ConfigError("Model.vgg_weights: the perceptual and style losses need VGG16 weights "
                          "(convert torchvision's vgg16-397923af.pth with tools/convert_weights.py "
                          "--arch VGG16), or set Model.vgg_seed for stand-in weights, or set "
                          "loss_weights perceptual and style to 0")
    vgg = VGG16Features()
    vgg.set_state_dict(seeded_vgg_state("VGG16", int(seed)))
    return vgg


@MODELS.register("CTSDGModel")
class CTSDGModel(TaskModel):
    """CTSDG generator + discriminator (`Model.networks`), official losses and update order.

    Args:
        networks: `{generator: {name: CTSDGGenerator}, discriminator: {name: CTSDGDiscriminator}}`.
        loss_weights: overrides of LOSS_WEIGHTS (hole, valid, perceptual, style, adversarial,
            intermediate).
        vgg_weights: VGG16 weights file for the perceptual and style losses (.pdparams from
            tools/convert_weights.py --arch VGG16, or torchvision's .pth); read at the first
            training step, so evaluation and export do not need it.
        vgg_seed: stand-in VGG16 weights drawn from this seed when no file is given.
        freeze_bn: the official fine-tuning phase: every generator BatchNorm keeps its running
            statistics (eval mode) while its affine weights train.
        edges: the `ctsdg_edges` parameters `predict` and exports use when no edge is given.
    """

    tune_sizes = INPAINTING_TUNE_SIZES

    def __init__(self, networks=None, loss_weights=None, vgg_weights=None, vgg_seed=None,
                 freeze_bn=False, edges=None):
        super().__init__(networks or DEFAULT_NETWORKS)
        if set(self.networks) != {"generator", "discriminator"} or self.primary != "generator":
            raise ConfigError(f"Model.networks: CTSDGModel needs generator (first) and discriminator, "
                              f"got {', '.join(self.networks)}")
        unknown = set(loss_weights or {}) - set(LOSS_WEIGHTS)
        if unknown:
            raise ConfigError(f"Model.loss_weights: unknown term(s) {', '.join(sorted(unknown))}; "
                              f"terms are {', '.join(LOSS_WEIGHTS)}")
        self.weights = {**LOSS_WEIGHTS, **{k: float(v) for k, v in (loss_weights or {}).items()}}
        # Built at the first training step: evaluation and export need no VGG16 file.
        self.vgg, self.vgg_spec = None, (vgg_weights, vgg_seed)
        self.perceptual, self.style = PerceptualLoss(VGG_LAYERS), StyleLoss(VGG_LAYERS)
        self.gan = GANLoss("nsgan")
        self.freeze_bn = bool(freeze_bn)
        self.networks["generator"].freeze_ec_bn = self.freeze_bn
        self.edges = {**DEPLOY_EDGES, **(edges or {})}
        self.size_multiple = self.networks["generator"].size_multiple

    def set_train(self, training):
        """Paddle's Layer.train() never calls the generator's own train(), so the fine-tuning
        BatchNorm freeze is re-applied at every switch to training mode."""
        super().set_train(training)
        if training and self.freeze_bn:
            freeze_batchnorm_stats(self.networks["generator"])

    # -- losses ---------------------------------------------------------------------------------

    def generator_losses(self, known, output, gt, edge, output_pred, output_edge, comp,
                         projected_image, projected_edge):
        """The unweighted terms of `criteria/loss.py generator_loss_func`."""
        terms = {"hole": F.l1_loss((1 - known) * output, (1 - known) * gt),
                 "valid": F.l1_loss(known * output, known * gt)}
        if self.weights["perceptual"] or self.weights["style"]:
            if self.vgg is None:
                self.vgg = build_vgg16(*self.vgg_spec)
            f_out, f_comp, f_gt = (self.vgg(x, VGG_LAYERS) for x in (output, comp, gt))
            terms["perceptual"] = self.perceptual(f_out, f_gt) + self.perceptual(f_comp, f_gt)
            terms["style"] = self.style(f_out, f_gt) + self.style(f_comp, f_gt)
        terms["adversarial"] = self.gan(output_pred, True) + binary_cross_entropy(output_edge, edge)
        terms["intermediate"] = (binary_cross_entropy(projected_edge, edge)
                                 + F.l1_loss(projected_image, gt))
        return terms

    def discriminator_loss(self, real_pred, fake_pred, real_edge, fake_edge, edge):
        """`criteria/loss.py discriminator_loss_func`."""
        return (self.gan(real_pred, True) + self.gan(fake_pred, False)
                + binary_cross_entropy(real_edge, edge) + binary_cross_entropy(fake_edge, edge))

    def train_step(self, batch, step):
        if "edge" not in batch:
            raise ConfigError("CTSDGModel needs the samples' `edge`: add `host_steps: [{name: ctsdg_edges}]` "
                              "to Train.dataset")
        gen, disc = self.networks["generator"], self.networks["discriminator"]
        gt, known = to_ctsdg(batch["target"], batch["mask"])
        edge_gray = batch["edge"]
        edge, gray = edge_gray[:, :1], edge_gray[:, 1:]
        with frozen(disc):
            with step.autocast():
                output, projected_image, projected_edge = gen(gt * known, edge_gray * known, known)
                comp = gt * known + output * (1 - known)
                output_pred, output_edge = disc(output, gray, edge, is_real=False)
                terms = self.generator_losses(known, output, gt, edge, output_pred, output_edge,
                                              comp, projected_image, projected_edge)
                g_loss = sum(self.weights[k] * v for k, v in terms.items())
            step.backward(g_loss)
        g_ok = step.step("generator")

        with step.autocast():
            real_pred, real_edge = disc(gt, gray, edge, is_real=True)
            fake_pred, fake_edge = disc(output.detach(), gray, edge, is_real=False)
            d_loss = self.discriminator_loss(real_pred, fake_pred, real_edge, fake_edge, edge)
        step.backward(d_loss)
        d_ok = step.step("discriminator")
        if not (g_ok and d_ok):
            return None
        logged = {"g_loss": float(g_loss), "d_loss": float(d_loss)}
        logged.update({f"g_{k}": float(v) for k, v in terms.items()})
        return logged

    # -- inference ------------------------------------------------------------------------------

    def _deploy_edges(self, inputs):
        """[edge, gray] of each masked input, as a deployed model computes them."""
        images = inputs["input"].numpy()
        edges = [run_host_steps({"input": x}, [self.edges])["edge"] for x in images]
        return paddle.to_tensor(np.stack(edges))

    @paddle.no_grad()
    def predict(self, inputs):
        """Composited result in [0, 1] for `input` (holes anything), `mask` (1 = hole) and,
        optionally, `edge` (else computed from `input` as deployed); any size (reflect-padded to
        a multiple of 128, cropped back)."""
        edge = inputs["edge"] if "edge" in inputs else self._deploy_edges(inputs)
        image, known = to_ctsdg(inputs["input"], inputs["mask"])
        padded, hw = pad_to_multiple(paddle.concat([image, edge, known], axis=1), self.size_multiple)
        out = self.export_module()(padded[:, :3], padded[:, 3:5], padded[:, 5:6])
        out = (crop_back(out, hw) + 1.0) / 2.0
        return composite_with_hole_mask(inputs["input"], out, inputs["mask"])

    def export_module(self):
        return CTSDGInference(self.networks["generator"])

    def io_spec(self):
        return inpainting_io_spec(
            [graph_input("image", 3, value_range=(-1.0, 1.0), source="input"),
             graph_input("edge", 2, role="edge"),
             graph_input("mask", 1, role="mask", mask_convention="1 = known")],
            output_range=(-1.0, 1.0), pad_multiple=self.size_multiple, pad_mode="reflect",
            host_steps=[self.edges])
