"""The EdgeConnect training skeleton that MISF and ICT's guided upsampler share.

Both official codes copy EdgeConnect's `InpaintingModel` (knazeri/edge-connect `src/models.py`,
as tsingqguo/misf `src/models.py` and raywzy/ICT `Guided_Upsample/src/models.py` ship it): a
generator and the spectral-norm PatchGAN discriminator (`MISFDiscriminator`), trained with

* generator: `l1_weight * mean|out - gt| / mean(M)` (raw output, hole-weighted by the mask ratio)
  + `perceptual_weight * sum L1(VGG19 relu1_1..relu5_1)` on (out, gt)
  + `style_weight * sum L1(Gram / CHW of relu2_2, relu3_4, relu4_4, relu5_2)` on (out*M, gt*M)
  + `adversarial_weight * GAN(D(out), real)`;
* discriminator: `(GAN(D(gt), real) + GAN(D(out.detach()), fake)) / 2`.

VGG19 sees [0, 1] images without ImageNet normalisation, as in the official codes. What differs
between the two models lives in their subclasses: the generator's input, the order of the two
optimizer steps (`train_step`), prediction and export.
"""
import paddle
import paddle.nn.functional as F

from ppir.errors import ConfigError
from ppir.losses.gan_loss import GANLoss
from ppir.losses.perceptual import PerceptualLoss, StyleLoss
from ppir.models.base_model import INPAINTING_TUNE_SIZES, TaskModel, graph_input, inpainting_io_spec

PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")


class EdgeConnectModel(TaskModel):
    """Networks `generator` then `discriminator`; the loss weights are EdgeConnect's
    `checkpoints/config.yml` values, which both MISF and ICT keep.

    Args:
        networks: `{generator: {...}, discriminator: {name: MISFDiscriminator, ...}}`.
        vgg_weights: torchvision VGG19 weights for the perceptual and style losses (see
            ppir/models/archs/vgg_arch.py); read when training starts, never for evaluation.
        l1_weight, perceptual_weight, style_weight, adversarial_weight: the loss weights.
        gan_type: nsgan | lsgan | hinge (the discriminator's sigmoid must match: off for hinge).
        perceptual_layers, style_layers: the VGG19 activations of the two feature losses.
    """

    size_multiple = 4
    tune_sizes = INPAINTING_TUNE_SIZES

    def __init__(self, networks, vgg_weights=None, l1_weight=1.0, perceptual_weight=0.1,
                 style_weight=250.0, adversarial_weight=0.1, gan_type="nsgan",
                 perceptual_layers=PERCEPTUAL_LAYERS, style_layers=STYLE_LAYERS):
        self.l1_weight, self.adversarial_weight = float(l1_weight), float(adversarial_weight)
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.gan = GANLoss(gan_type)
        self.perceptual = PerceptualLoss(perceptual_layers)
        self.style = StyleLoss(style_layers)
        if (self.perceptual_weight or self.style_weight) and vgg_weights is None:
            raise ConfigError("Model.vgg_weights: the perceptual and style losses need VGG19 "
                              "weights (or set perceptual_weight and style_weight to 0)")
        self.vgg_weights, self._vgg = vgg_weights, None
        sigmoid = dict(networks.get("discriminator") or {}).get("use_sigmoid", True)
        if bool(sigmoid) != (gan_type != "hinge"):
            # Official: Discriminator(use_sigmoid=config.GAN_LOSS != 'hinge').
            raise ConfigError(f"Model.networks.discriminator.use_sigmoid must be "
                              f"{gan_type != 'hinge'} with gan_type {gan_type}")
        super().__init__(networks)
        if list(self.networks) != ["generator", "discriminator"]:
            raise ConfigError(f"Model.networks: {type(self).__name__} needs exactly 'generator' "
                              f"then 'discriminator', got {list(self.networks)}")

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

    def discriminator_loss(self, images, outputs):
        """`(GAN(D(gt), real) + GAN(D(out), fake)) / 2`, calling D on the ground truth first and
        then on the detached output, as the official codes do (spectral norm's power iteration
        advances on every training-mode call, so the call order is part of the result)."""
        dis = self.networks["discriminator"]
        dis_real, _ = dis(images)
        dis_fake, _ = dis(outputs.detach())
        return (self.gan(dis_real, True, True) + self.gan(dis_fake, False, True)) / 2

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

    def io_spec(self):
        """The exported composite takes the image ([0, 1], anything in the holes) and the mask
        (1 = hole); subclasses add their own inputs."""
        return inpainting_io_spec(
            [graph_input("image", 3, source="input"),
             graph_input("mask", 1, role="mask", mask_convention="1 = hole")],
            output_range=(0.0, 1.0), pad_multiple=self.size_multiple, pad_mode="replicate")
