"""MISF's training and inference (official `InpaintingModel` in tsingqguo/misf `src/models.py`).

    Model:
      name: MISFModel
      networks: {generator: {name: MISFGenerator}, discriminator: {name: MISFDiscriminator}}
      vgg_weights: weights/vgg19.pdparams    # torchvision VGG19, converted (archs/vgg_arch.py)

The losses are EdgeConnect's, shared with ICT's guided upsampler (ppir/models/edgeconnect_base.py:
L1 / mean(M), perceptual and style on VGG19, nsgan adversarial; D `(real + fake) / 2`); the
generator sees the masked image and the mask (`misf_input`).

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
from ppir.models.archs.misf_arch import misf_input
from ppir.models.edgeconnect_base import PERCEPTUAL_LAYERS, STYLE_LAYERS, EdgeConnectModel
from ppir.registry import MODELS
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
class MISFModel(EdgeConnectModel):
    """MISF's generator and discriminator with EdgeConnect's losses (EdgeConnectModel's
    arguments) and the official update order (`update_order`, see the module docstring)."""

    def __init__(self, networks=None, vgg_weights=None, l1_weight=1.0, perceptual_weight=0.1,
                 style_weight=250.0, adversarial_weight=0.1, gan_type="nsgan",
                 perceptual_layers=PERCEPTUAL_LAYERS, style_layers=STYLE_LAYERS,
                 update_order="official"):
        if update_order not in UPDATE_ORDERS:
            raise ConfigError(f"Model.update_order: {update_order!r} is not one of "
                              f"{', '.join(UPDATE_ORDERS)}")
        self.update_order = update_order
        super().__init__(networks or _DEFAULT_NETWORKS, vgg_weights, l1_weight, perceptual_weight,
                         style_weight, adversarial_weight, gan_type, perceptual_layers,
                         style_layers)

    def losses(self, images, masks):
        """(gen_loss, dis_loss, logged terms) of one batch, calling D in the official order."""
        outputs = self.networks["generator"](misf_input(images, masks))
        dis_loss = self.discriminator_loss(images, outputs)
        gen_fake, _ = self.networks["discriminator"](outputs)
        terms = self.generator_terms(outputs, images, masks, gen_fake)
        gen_loss = sum(terms.values())
        return gen_loss, dis_loss, terms

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
