"""ICT at inference time: tokenise, sample the missing tokens, upsample each prior into the image.

`complete` is the whole pipeline in numpy around two callables, so the same loop runs an export
(the transformer's row logits graph and the upsampler graph, each a `ppir.inference.predictor`)
and a dygraph model (`ppir.load(config, weights)`).

Sampling runs one transformer forward per missing token (about 410 for a 40 % hole at 32 x 32)
and reads the logits at that one position, so the forward is the user's wait: the deployed graph
computes the last block, the final LayerNorm and the head at the sampled position only
(ICTRowLogits), and every step has the same shapes, so prepared kernels and buffers are reused.
Every step changes one token and, through bidirectional attention, every activation after the
first layer, so nothing else can be reused between steps.
"""
import os

import numpy as np

from ppir.inference import spec as specs
from ppir.inference.progress import Progress
from ppir.utils.tiling import crop_back, pad_to_multiple


def complete(image, mask, palette, prior_size, logits_fn, upsample_fn, n_samples=1, top_k=40,
             temperature=1.0, seed=0, progress=None):
    """ICT inference on one image: [(prior s x s x 3 uint8, completion CHW [0, 1])] per sample.

    image CHW [0, 1] (hole pixels are ignored), mask 1xHxW (1 = hole); logits_fn as in
    `ppir.models.ict_sampling.sample_tokens`; upsample_fn(image, mask, prior) -> composite CHW,
    all numpy. `progress` as in ppir.inference.progress (one step per sampled position)."""
    from ppir.data.ict_data import prior_tokens, upsample_prior
    from ppir.data.palette import tokens_to_image
    from ppir.models.ict_sampling import sample_tokens

    image = np.asarray(image, np.float32)
    mask = np.asarray(mask, np.float32)
    tokens, missing = prior_tokens(image, mask, palette, prior_size)
    with Progress(progress, int(missing.sum()), "tokens") as bar:
        sampled = sample_tokens(logits_fn, tokens, missing, n_samples, top_k, temperature, seed,
                                on_step=lambda done, total: bar.step())
    known = image * (1 - mask)
    return [(tokens_to_image(row, palette, prior_size),
             np.asarray(upsample_fn(known, mask, upsample_prior(row, palette, prior_size, image.shape[1:]))))
            for row in sampled]


class GraphLogits:
    """The exported logits graph as a `sample_tokens` logits_fn: (tokens, masks, positions) ->
    the logits at `positions`. An export from before the row graph (no `positions` input) is cut
    to the positions here."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.takes_positions = "positions" in [item["name"] for item in predictor.inputs]

    def __call__(self, tokens, masks, positions=None):
        feeds = {"tokens": np.ascontiguousarray(tokens, np.int64), "masks": np.ascontiguousarray(masks, np.float32)}
        if self.takes_positions:
            if positions is None:
                positions = np.arange(feeds["tokens"].shape[1])
            feeds["positions"] = np.ascontiguousarray(positions, np.int64).reshape(-1)
        logits = self.predictor.run(feeds)
        if self.takes_positions or positions is None:
            return logits
        return logits[:, np.asarray(positions, np.int64).reshape(-1)]


class GraphUpsampler:
    """The exported upsampler graph as `complete`'s upsample_fn: (image CHW, mask 1xHxW, prior
    CHW) -> composite CHW, reflect-padded to the graph's multiple and cropped back."""

    def __init__(self, predictor, multiple):
        self.predictor, self.multiple = predictor, int(multiple)

    def __call__(self, image, mask, prior):
        stacked, hw = pad_to_multiple(np.concatenate([image, mask, prior])[None].astype(np.float32),
                                      self.multiple, "reflect")
        feeds = {"image": stacked[:, :3], "mask": stacked[:, 3:4], "prior": stacked[:, 4:]}
        return crop_back(self.predictor.run(feeds), hw)[0]


def stage_inputs(record, default):
    """The graph inputs of a stage record, as the predictor factory takes them."""
    return [{"name": name} for name in record.get("graph_inputs") or default]


def load_palette_of(model_dir, record):
    from ppir.data.palette import load_palette

    return load_palette(os.path.join(model_dir, record["palette_file"]))


TRANSFORMER_INPUTS = ("tokens", "masks", "positions")
UPSAMPLER_INPUTS = ("image", "mask", "prior")


def graph_records(spec):
    return specs.graph_record(spec, "transformer"), specs.graph_record(spec, "upsampler")
