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
"""
import numpy as np
import paddle
from PIL import Image

from ppir.data.ict_data import resolve_palette
from ppir.data.palette import image_to_tokens, mask_to_tokens, tokens_to_image
from ppir.errors import ConfigError
from ppir.models import MODELS
from ppir.models.base_model import TaskModel
from ppir.models.ict_inference import ICTLogits
from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens

__all__ = ["ICTTransformerModel", "prior_tokens", "upsample_prior"]


def prior_tokens(image, mask, palette, size):
    """(tokens int64 (s*s,), missing float32 (s*s,)) of one CHW [0, 1] image and its 1xHxW mask
    (1 = hole), by the official tokenisation (ppir.data.palette)."""
    image = np.asarray(image, np.float32).transpose(1, 2, 0)
    return (image_to_tokens(image, palette, size),
            mask_to_tokens(np.asarray(mask, np.float32)[0], size))


def upsample_prior(tokens, palette, size, hw):
    """s*s tokens -> the prior as a 3xHxW float32 [0, 1] image: the s x s palette image (uint8,
    as the official code saves it) resized with PIL BICUBIC, as the upsampler reads it."""
    small = Image.fromarray(tokens_to_image(tokens, palette, size))
    big = small.resize((int(hw[1]), int(hw[0])), resample=Image.BICUBIC)
    return np.asarray(big, np.float32).transpose(2, 0, 1) / 255.0


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

    def sample(self, image, mask, n_samples=1, seed=None):
        """Sampled token grids (n_samples, s*s) for one CHW image and its 1xHxW mask."""
        tokens, missing = prior_tokens(image, mask, self.palette, self.prior_size)
        was_training = self.net.training
        try:  # paddle_logits_fn puts the network in eval mode
            return sample_tokens(paddle_logits_fn(self.net), tokens, missing, n_samples,
                                 self.top_k, self.temperature,
                                 self.sample_seed if seed is None else seed)
        finally:
            if was_training:
                self.net.train()

    @paddle.no_grad()
    def predict(self, inputs):
        """The stage-1 completion of a 1x3xHxW `input` with its 1x1xHxW `mask` (1 = hole): the
        sampled prior, bicubic-upsampled, in the holes; the known pixels kept."""
        image, mask = inputs["input"].numpy()[0], inputs["mask"].numpy()[0]
        tokens = self.sample(image, mask)[0]
        prior = upsample_prior(tokens, self.palette, self.prior_size, image.shape[1:])
        return paddle.to_tensor((image * (1 - mask) + prior * mask)[None])

    def export_module(self):
        return ICTLogits(self.net)

    def io_spec(self):
        return {
            "task": "ict_transformer",
            "inputs": [
                {"name": "tokens", "source": "tokens", "dtype": "int64", "shape": [-1, -1]},
                {"name": "masks", "source": "token_mask", "dtype": "float32", "shape": [-1, -1],
                 "mask_convention": "1 = hole"},
            ],
            "host_steps": [{"name": "ict_tokens", "size": self.prior_size, "source": "input"}],
            "output": {"kind": "logits", "vocab_size": int(self.net.vocab_size)},
            "prior_size": self.prior_size,
            "sampling": {"top_k": self.top_k, "temperature": self.temperature},
        }
