"""Losses, built by name from `Model.losses` entries: `{name: L1Loss, weight: 1.0}`."""
from ppir.registry import Registry

LOSSES = Registry("loss")

from ppir.losses import pixel_loss  # noqa: E402,F401
from ppir.losses import fft_loss  # noqa: E402,F401
from ppir.losses import perceptual  # noqa: E402,F401
from ppir.losses import gan_loss  # noqa: E402,F401
