"""Adversarial losses as EdgeConnect's `AdversarialLoss` computes them (MISF, ICT's guided
upsampler; CTSDG's BCE terms are the nsgan case).

    gan = GANLoss("nsgan")
    d_loss = (gan(d_real, True, True) + gan(d_fake, False, True)) / 2
    g_loss = gan(d_on_generated, True, False)

* nsgan: BCE against 1 / 0 on the discriminator's (sigmoid) outputs;
* lsgan: mean squared error against 1 / 0;
* hinge: discriminator mean(relu(1 - out)) for real, mean(relu(1 + out)) for fake; generator
  mean(-out) (raw, not sigmoid, outputs).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.errors import ConfigError
from ppir.registry import LOSSES

GAN_TYPES = ("nsgan", "lsgan", "hinge")


def binary_cross_entropy(outputs, labels):
    """Mean BCE of probabilities, as torch's and Paddle's BCE compute it (each log clamped at
    -100), written out so that a NaN output gives a NaN loss: Paddle's kernel raises on it
    instead (3.2), before the trainer's non-finite guard can skip the step."""
    log_p = paddle.clip(paddle.log(outputs), min=-100.0)
    log_q = paddle.clip(paddle.log(1 - outputs), min=-100.0)
    return -(labels * log_p + (1 - labels) * log_q).mean()


@LOSSES.register("GANLoss")
class GANLoss(nn.Layer):
    def __init__(self, type="nsgan", real_label=1.0, fake_label=0.0):  # noqa: A002 (official name)
        super().__init__()
        if type not in GAN_TYPES:
            raise ConfigError(f"GANLoss.type: {type!r} is not one of {', '.join(GAN_TYPES)}")
        self.type = type
        self.real_label, self.fake_label = float(real_label), float(fake_label)

    def forward(self, outputs, is_real, is_disc=False):
        if self.type == "hinge":
            if is_disc:
                return F.relu(1 - outputs if is_real else 1 + outputs).mean()
            return (-outputs).mean()
        labels = paddle.full_like(outputs, self.real_label if is_real else self.fake_label)
        if self.type == "nsgan":
            return binary_cross_entropy(outputs, labels)
        return F.mse_loss(outputs, labels)
