"""MISF's training and inference (official `InpaintingModel` in tsingqguo/misf `src/models.py`).

    Model:
      name: MISFModel
      networks: {generator: {name: MISFGenerator}, discriminator: {name: MISFDiscriminator}}
      vgg_weights: weights/vgg19.pdparams    # torchvision VGG19, converted (see ppir/models/archs/vgg_arch.py)

Generator loss as published (EdgeConnect's, `checkpoints/config.yml` weights):
`l1_weight * mean|out - gt| / mean(M)` (raw output, hole-weighted by the mask ratio)
+ `perceptual_weight * sum L1(VGG19 relu1_1..relu5_1)` on (out, gt)
+ `style_weight * sum L1(Gram / CHW of relu2_2, relu3_4, relu4_4, relu5_2)` on (out*M, gt*M)
+ `adversarial_weight * BCE(D(out), 1)`; discriminator loss `(BCE(D(gt), 1) + BCE(D(out), 0)) / 2`.
VGG19 sees [0, 1] images without ImageNet normalisation, as in the official code.

`update_order`:
* `official` (default): both optimizers are cleared before the forward, then
  `gen_loss.backward(); G.step(); dis_loss.backward(); D.step()` (official `process` /
  `backward`). D's gradients are not cleared in between, so D's step also carries the gradient of
  the generator's adversarial term 0.1 * BCE(D(out), 1), which pushes D towards calling fakes
  real. Reproduced because the released models were trained that way.
* `standard`: the textbook separation: D's gradients are cleared after G's step, so each network
  steps on its own loss only.
Both call D three times per step in the official order (real, detached fake, fake): spectral
norm's power iteration advances on every training-mode call, so fusing calls would change it.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.errors import ConfigError
from ppir.losses.gan_loss import GANLoss
from ppir.losses.perceptual import PerceptualLoss, StyleLoss
from ppir.models import MODELS
from ppir.models.archs.misf_arch import misf_input
from ppir.models.base_model import INPAINTING_TUNE_SIZES, TaskModel, graph_input, inpainting_io_spec
from ppir.utils.tiling import crop_back, pad_to_multiple

UPDATE_ORDERS = ("official", "standard")
_DEFAULT_NETWORKS = {"generator": {"name": "MISFGenerator"},
                     "discriminator": {"name": "MISFDiscriminator"}}


class MISFInpaint(nn.Layer):
    """The exported graph: (image [0, 1] with anything in the holes, mask 1 = hole) -> the
    composite `image * (1 - M) + G(image * (1 - M), M) * M` in [0, 1], for any H x W that are
    multiples of 4. The generator's kernel resize is only right for square inputs (see
    misf_arch), so the graph edge-pads its input to a square and crops the output back; the pad
    sizes come from the runtime shape, so one export serves every size."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image, mask):
        shape = paddle.shape(image)
        h, w = shape[2], shape[3]
        side = paddle.maximum(h, w)
        zero = paddle.zeros_like(h)
        pads = paddle.stack([zero, side - w, zero, side - h]).astype("int32")
        x = F.pad(misf_input(image, mask), pads, mode="replicate", data_format="NCHW")
        out = self.generator(x)[:, :, :h, :w]
        return image * (1 - mask) + out * mask


@MODELS.register("MISFModel")
class MISFModel(TaskModel):
    size_multiple = 4
    tune_sizes = INPAINTING_TUNE_SIZES

    def __init__(self, networks=None, vgg_weights=None, l1_weight=1.0, perceptual_weight=0.1,
                 style_weight=250.0, adversarial_weight=0.1, gan_type="nsgan",
                 perceptual_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                 style_layers=("relu2_2", "relu3_4", "relu4_4", "relu5_2"),
                 update_order="official"):
        if update_order not in UPDATE_ORDERS:
            raise ConfigError(f"Model.update_order: {update_order!r} is not one of "
                              f"{', '.join(UPDATE_ORDERS)}")
        self.update_order = update_order
        self.l1_weight, self.adversarial_weight = float(l1_weight), float(adversarial_weight)
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.gan = GANLoss(gan_type)
        self.perceptual = PerceptualLoss(perceptual_layers)
        self.style = StyleLoss(style_layers)
        if (self.perceptual_weight or self.style_weight) and vgg_weights is None:
            raise ConfigError("Model.vgg_weights: the perceptual and style losses need VGG19 "
                              "weights (or set perceptual_weight and style_weight to 0)")
        self.vgg_weights, self._vgg = vgg_weights, None
        networks = networks or _DEFAULT_NETWORKS
        sigmoid = dict(networks.get("discriminator") or {}).get("use_sigmoid", True)
        if bool(sigmoid) != (gan_type != "hinge"):
            # Official: Discriminator(use_sigmoid=config.GAN_LOSS != 'hinge').
            raise ConfigError(f"Model.networks.discriminator.use_sigmoid must be "
                              f"{gan_type != 'hinge'} with gan_type {gan_type}")
        super().__init__(networks)
        if list(self.networks) != ["generator", "discriminator"]:
            raise ConfigError(f"Model.networks: MISFModel needs exactly 'generator' then "
                              f"'discriminator', got {list(self.networks)}")

    @property
    def vgg(self):
        """The frozen VGG19 of the perceptual and style losses, loaded on first use: evaluation
        and export never need its weights; training loads them as it starts (set_train)."""
        if self._vgg is None:
            from ppir.models.archs.vgg_arch import build_vgg

            self._vgg = build_vgg("VGG19", self.vgg_weights, where="Model.vgg_weights")
        return self._vgg

    def set_train(self, training):
        if training and (self.perceptual_weight or self.style_weight):
            self._vgg = self.vgg  # load now: a missing file stops the run before step 1
        super().set_train(training)

    def losses(self, images, masks):
        """(gen_loss, dis_loss, logged terms) of one batch, calling D in the official order."""
        gen, dis = self.networks["generator"], self.networks["discriminator"]
        outputs = gen(misf_input(images, masks))
        dis_real, _ = dis(images)
        dis_fake, _ = dis(outputs.detach())
        dis_loss = (self.gan(dis_real, True, True) + self.gan(dis_fake, False, True)) / 2
        gen_fake, _ = dis(outputs)
        terms = self.generator_terms(outputs, images, masks, gen_fake)
        gen_loss = sum(terms.values())
        return gen_loss, dis_loss, terms

    def generator_terms(self, outputs, images, masks, gen_fake):
        """The generator's weighted loss terms; `gen_fake` is D(outputs)."""
        terms = {"adv": self.gan(gen_fake, True, False) * self.adversarial_weight,
                 "l1": F.l1_loss(outputs, images) * self.l1_weight / paddle.mean(masks)}
        if self.perceptual_weight:
            layers = self.perceptual.layers
            terms["perceptual"] = self.perceptual(
                self.vgg(outputs, layers), self.vgg(images, layers)) * self.perceptual_weight
        if self.style_weight:
            layers = self.style.layers
            terms["style"] = self.style(
                self.vgg(outputs * masks, layers), self.vgg(images * masks, layers)) * self.style_weight
        return terms

    @staticmethod
    def logged(stepped, gen_loss, dis_loss, terms):
        """The float losses of a step, or None when a network skipped it as non-finite."""
        if not stepped:
            return None
        logged = {"gen_loss": float(gen_loss), "dis_loss": float(dis_loss)}
        logged.update({k: float(v) for k, v in terms.items()})
        return logged

    def train_step(self, batch, step):
        step.zero_grad("generator", "discriminator")
        with step.autocast():
            gen_loss, dis_loss, terms = self.losses(batch["target"], batch["mask"])
        step.backward(gen_loss)
        gen_ok = step.step("generator")
        if self.update_order == "standard":
            step.zero_grad("discriminator")
        step.backward(dis_loss)
        dis_ok = step.step("discriminator")
        return self.logged(gen_ok and dis_ok, gen_loss, dis_loss, terms)

    @paddle.no_grad()
    def predict(self, inputs):
        """The composite `input * (1 - M) + G(...) * M` for NCHW `inputs["input"]` (known pixels;
        holes may hold anything) and `inputs["mask"]` (1 = hole) of any size: edge-padded to a
        multiple of 4 here and to a square inside the exported graph, then cropped back."""
        image, hw = pad_to_multiple(inputs["input"], self.size_multiple, "replicate")
        mask, _ = pad_to_multiple(inputs["mask"], self.size_multiple, "replicate")
        return crop_back(self.export_module()(image, mask), hw)

    def export_module(self):
        return MISFInpaint(self.networks["generator"])

    def io_spec(self):
        return inpainting_io_spec(
            [graph_input("image", 3, source="input"),
             graph_input("mask", 1, role="mask", mask_convention="1 = hole")],
            output_range=(0.0, 1.0), pad_multiple=self.size_multiple, pad_mode="replicate")
