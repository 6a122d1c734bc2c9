"""The task-model contract the trainer, evaluator and exporter rely on.

A task model owns named networks (the first one is the primary: it is evaluated, exported,
averaged by EMA and saved as `model.pdparams`), its losses and its `train_step`; the trainer
stays one loop whatever the task. Config:

    Model:
      name: RestorationModel          # one network: `network: {name: MIRNetV2, ...}`
    Model:
      name: CTSDGModel                # several: `networks: {generator: {...}, discriminator: {...}}`

Optimizer / LRScheduler hold either one spec (`{name: Adam, ...}`: the same for every trained
network) or one spec per network name (`{generator: {...}, discriminator: {...}}`).
"""
import abc
from collections import OrderedDict

from ppir.errors import ConfigError


class ExportGraph:
    """One graph of a deployment, as `ppir.inference.export` traces, checks and times it.

    Args:
        layer: the paddle.nn.Layer to trace (its forward takes `inputs` in order).
        inputs: [(name, shape with None for dynamic dims, dtype)].
        subdir: the graph's folder inside the export ("" = the export's root).
        check_feeds: [{name: array}] the traced graph must reproduce dygraph on (None: the
            exporter builds a square and a non-square image input from `io_spec()`).
        tune_feeds: [((H, W), {name: array})] the CPU paths are timed on, smallest first (None:
            images at the model's `tune_sizes`; []: not timed).
        atol: max abs difference allowed against dygraph (None: the exporter's default).
        onnx: whether `--onnx` converts this graph too.
    """

    def __init__(self, layer, inputs, subdir="", check_feeds=None, tune_feeds=None, atol=None,
                 onnx=True):
        self.layer, self.inputs, self.subdir = layer, list(inputs), subdir
        self.check_feeds, self.tune_feeds = check_feeds, tune_feeds
        self.atol, self.onnx = atol, onnx


class TaskModel(abc.ABC):
    """Subclasses build `self.networks` (an OrderedDict name -> paddle.nn.Layer, primary first)
    and implement `train_step`, `predict`, `export_module` and `io_spec`."""

    # (H, W) inputs tools/export.py times the CPU deploy paths on, smallest first: a small photo
    # and an HD frame, the two ends of what restoration users run.
    tune_sizes = ((256, 256), (720, 1280))

    def __init__(self, networks):
        from ppir.models import build_network

        if not isinstance(networks, dict) or not networks:
            raise ConfigError(f"Model.networks: expected a mapping of network names to "
                              f"{{name: ...}} specs, got {networks!r}")
        self.networks = OrderedDict(
            (name, build_network(spec, where=f"Model.networks.{name}")) for name, spec in networks.items())

    @property
    def primary(self):
        return next(iter(self.networks))

    @property
    def net(self):
        """The primary network."""
        return self.networks[self.primary]

    def trainable(self):
        """Names of the networks that get an optimizer (default: all)."""
        return list(self.networks)

    def set_train(self, training):
        """Put every network in training or evaluation mode. Override where a model keeps some
        layers frozen in training (Paddle's Layer.train() does not call sublayer overrides)."""
        for net in self.networks.values():
            net.train() if training else net.eval()

    @property
    def training(self):
        return self.net.training

    @abc.abstractmethod
    def train_step(self, batch, step):
        """One optimisation step on `batch` (dict of tensors) through `step` (ppir.engine.step).
        Returns the float losses to log, or None when the step was skipped as non-finite."""

    @abc.abstractmethod
    def predict(self, inputs):
        """The final image (NCHW, [0, 1]) for a dict of input tensors; any size."""

    @abc.abstractmethod
    def export_module(self):
        """The layer tools/export.py saves: its forward takes the inputs `io_spec` lists."""

    def export_graphs(self):
        """{name: ExportGraph}: the graphs a deployment of this model runs. Default: one graph,
        `export_module()` fed the inputs `io_spec()` lists, at the export's root."""
        inputs = [(item["name"], [None, int(item["channels"]), None, None], item.get("dtype", "float32"))
                  for item in self.io_spec()["inputs"]]
        return {"model": ExportGraph(self.export_module(), inputs)}

    def deploy_spec(self, export_dir):
        """inference.yml before the exporter adds each graph's record (files, checks, paths):
        `io_spec()` for a single-graph model. A multi-graph model returns its `stages` here and
        may write files of its own into `export_dir` (ICT: the palette)."""
        return dict(self.io_spec())

    @abc.abstractmethod
    def io_spec(self):
        """What a predictor must know to feed the exported model (written to inference.yml):

            task: restoration | inpainting
            layout: NCHW, color_order: RGB
            inputs:           # the exported graph's inputs, in export_module().forward's order
              - {name: image, source: input, channels: 3, dtype: float32, value_range: [-1, 1], role: image}
              - {name: mask, source: mask, channels: 1, dtype: float32, value_range: [0, 1], role: mask,
                 mask_convention: 1 = known}       # or "1 = hole"; the data layer's mask is 1 = hole
            host_steps: [{name: ..., **params}]    # ppir.data.host_steps, run before the graph
            output: {value_range: [-1, 1], composite: true}   # composite: known pixels from the input
            pad_multiple: 128, pad_mode: reflect

        Each input is taken from the host sample's `source` array (`input`: the masked or degraded
        image in [0, 1]; `mask`: 1 on holes; or what a host step added), mapped linearly from
        [0, 1] to `value_range`, and a mask with `mask_convention: 1 = known` is inverted."""


def graph_input(name, channels, role="image", value_range=(0.0, 1.0), source=None, **extra):
    """One entry of io_spec()["inputs"] (float32, fed from the host sample's `source` array,
    which defaults to the input's name)."""
    return dict({"name": name, "source": source or name, "channels": channels, "dtype": "float32",
                 "value_range": list(value_range), "role": role}, **extra)


def inpainting_io_spec(inputs, output_range, pad_multiple, pad_mode, host_steps=()):
    """io_spec() of an inpainting model whose exported graph returns the composited image."""
    return {
        "task": "inpainting",
        "layout": "NCHW",
        "color_order": "RGB",
        "inputs": list(inputs),
        "host_steps": [dict(step) for step in host_steps],
        "output": {"channels": 3, "value_range": list(output_range), "composite": True},
        "pad_multiple": pad_multiple,
        "pad_mode": pad_mode,
    }


# Inpainting models are trained and used at 256x256; CTSDG's attention grows with the square of
# the pixel count (1280x720 needs more than 22 GB), so their larger timing size is 512x512.
INPAINTING_TUNE_SIZES = ((256, 256), (512, 512))
