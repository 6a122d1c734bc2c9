"""The restoration task: one network, pixel losses, image in -> image out.

Covers MIRNetV2 (one output) and MIMO-UNet (three scales; multi-scale losses see all of them,
everything else scores the last, full-resolution one).
"""
import paddle
import paddle.nn as nn

from ppir.errors import ConfigError
from ppir.losses import LOSSES
from ppir.losses.pixel_loss import final_output
from ppir.models.base_model import TaskModel
from ppir.registry import MODELS
from ppir.utils.tiling import crop_back, pad_to_multiple


class FinalOutput(nn.Layer):
    """What gets exported: one NCHW tensor in, the final image out."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return final_output(self.net(x))


@MODELS.register("RestorationModel")
class RestorationModel(TaskModel):
    """One network (`Model.network`), image in -> image out, trained with pixel losses."""

    def __init__(self, network, losses=({"name": "L1Loss"},)):
        super().__init__({"net": network})
        # Channel count of the image input: the official constructors call it inp_channels.
        self.in_channels = int(network.get("inp_channels", network.get("in_channels", 3)))
        self.size_multiple = getattr(type(self.net), "size_multiple", 1)
        self.losses = []
        for i, spec in enumerate(losses):
            if not isinstance(spec, dict):
                raise ConfigError(f"Model.losses[{i}]: expected a mapping with a 'name', got {spec!r}")
            spec = dict(spec)
            weight = float(spec.pop("weight", 1.0))
            self.losses.append((spec["name"], weight, LOSSES.build(spec, where=f"Model.losses[{i}]")))

    def compute_loss(self, outputs, target):
        """Weighted sum of the configured losses, plus each term for logging."""
        parts = {}
        total = 0.0
        for name, weight, loss_fn in self.losses:
            value = loss_fn(outputs, target)
            parts[name] = value
            # A composite loss (MSFR: content + FFT) exposes its terms for the log line.
            parts.update(getattr(loss_fn, "last_parts", {}))
            total = total + weight * value
        return total, parts

    def train_step(self, batch, step):
        """One optimisation step. Returns the float losses, or None if it was skipped as
        non-finite (decided after the gradients are averaged over ranks, so every rank skips the
        same steps)."""
        with step.autocast():
            outputs = self.net(batch["input"])
            total, parts = self.compute_loss(outputs, batch["target"])
        step.backward(total)
        if not step.step("net"):
            return None
        logged = {"loss": float(total)}
        if len(parts) > 1:  # several terms: log each (a single loss is already `loss`)
            logged.update({k: float(v) for k, v in parts.items()
                           if not (len(self.losses) == 1 and k == self.losses[0][0])})
        return logged

    @paddle.no_grad()
    def predict(self, inputs):
        """Final output for an NCHW batch `inputs["input"]` of any size (reflect-padded to the
        network's multiple and cropped back)."""
        padded, hw = pad_to_multiple(inputs["input"], self.size_multiple)
        return crop_back(final_output(self.net(padded)), hw)

    def export_module(self):
        return FinalOutput(self.net)

    def io_spec(self):
        """What a predictor must know to feed the exported model (written to inference.yml)."""
        return {
            "task": "restoration",
            "layout": "NCHW",
            "color_order": "RGB",
            "inputs": [{"name": "x", "source": "input", "channels": self.in_channels, "dtype": "float32",
                        "value_range": [0.0, 1.0], "role": "image"}],
            "host_steps": [],
            "output": {"channels": 3, "value_range": [0.0, 1.0], "composite": False},
            "pad_multiple": self.size_multiple,
            "pad_mode": "reflect",
        }
