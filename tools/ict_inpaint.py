r"""ICT end to end on one image: image + mask -> tokens -> sampled priors -> upsampled completions.

    python tools/ict_inpaint.py \
        --transformer configs/ict_transformer_places2.yml --transformer_weights W_T.pdparams \
        --upsampler configs/ict_upsample_places2.yml --upsampler_weights W_U.pdparams \
        --image photo.png --mask hole.png --n_samples 4 --seed 0 --output out/

The image is resized to --size (PIL BICUBIC; the released upsamplers are trained at 256) and the
mask (white = hole) with PIL NEAREST. Stage 1 tokenises the image with the transformer config's
palette and samples `n_samples` completions of the missing tokens (raster order, top-k and
temperature of the config; `--seed` fixes every draw); stage 2 upsamples each prior into the
image. Written to --output: `prior_<k>.png` (the s x s token image), `completion_<k>.png` (the
upsampler's output composited into the known pixels), `masked.png` and `mask.png`.

--backend inference runs the transformer's forwards through its exported logits graph with
Paddle Inference (oneDNN on CPU): the same tokens as eager for the same seed, faster
(benchmark/bench_ict_sampling.py, docs/models/ict.md).
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: F401,E402
from ppir.errors import run_cli  # noqa: E402


def add_model_arguments(parser):
    """The two stages' configs and weights (shared with tools/ict_export.py)."""
    parser.add_argument("--transformer", required=True, help="transformer config (.yml)")
    parser.add_argument("--transformer_weights", required=True)
    parser.add_argument("--upsampler", required=True, help="upsampler config (.yml)")
    parser.add_argument("--upsampler_weights", required=True, help="generator weights or a "
                        "checkpoint dir")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--image", required=True)
    parser.add_argument("--mask", required=True, help="mask file, white = hole")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--n_samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="working size (0 keeps the image's)")
    parser.add_argument("--backend", choices=("eager", "inference"), default="eager")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="Paddle Inference CPU threads")
    return parser.parse_args(argv)


def load_inputs(image_path, mask_path, size):
    """(CHW float32 [0, 1] image, 1xHxW float32 mask with 1 = hole)."""
    import numpy as np
    from PIL import Image

    from ppir.data.image_io import read_image, to_uint8
    from ppir.data.masks import read_mask

    image = Image.fromarray(to_uint8(read_image(image_path)))
    mask = Image.fromarray(to_uint8(read_mask(mask_path)))
    if size:
        image = image.resize((size, size), resample=Image.BICUBIC)
        mask = mask.resize((size, size), resample=Image.NEAREST)
    image = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
    mask = (np.asarray(mask, np.float32) > 127.5).astype(np.float32)[None]
    return image, mask


def build(config, weights, device):
    from ppir.config import load_config
    from ppir.engine.checkpoint import load_pretrained
    from ppir.models import build_model
    from ppir.utils.device import setup_device

    cfg = load_config(config)
    setup_device(device)
    model = build_model(cfg)
    load_pretrained(model, weights)
    model.set_train(False)
    return model


def dygraph_upsampler(upsampler):
    """The upsampler model as `complete`'s upsample_fn (numpy in and out)."""
    import paddle

    def upsample_fn(image, mask, prior):
        inputs = {"input": image, "mask": mask, "prior": prior}
        return upsampler.predict({k: paddle.to_tensor(v[None]) for k, v in inputs.items()}).numpy()[0]

    return upsample_fn


def main(argv=None):
    args = parse_args(argv)
    from ppir.data.image_io import write_image
    from ppir.models.ict_inference import PredictorLogits, complete, save_logits_graph
    from ppir.models.ict_sampling import paddle_logits_fn

    image, mask = load_inputs(args.image, args.mask, args.size)
    transformer = build(args.transformer, args.transformer_weights, args.device)
    upsampler = build(args.upsampler, args.upsampler_weights, args.device)
    os.makedirs(args.output, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        logits_fn = paddle_logits_fn(transformer.net)
        if args.backend == "inference":
            prefix = os.path.join(tmp, "logits")
            save_logits_graph(transformer.net, prefix)
            logits_fn = PredictorLogits(prefix, args.device, args.threads)
        results = complete(image, mask, transformer.palette, transformer.prior_size, logits_fn,
                           dygraph_upsampler(upsampler), args.n_samples, transformer.top_k,
                           transformer.temperature, args.seed)
    write_image(os.path.join(args.output, "masked.png"), (image * (1 - mask)).transpose(1, 2, 0))
    write_image(os.path.join(args.output, "mask.png"), mask.repeat(3, 0).transpose(1, 2, 0))
    for k, (prior, completion) in enumerate(results):
        write_image(os.path.join(args.output, f"prior_{k}.png"), prior)
        write_image(os.path.join(args.output, f"completion_{k}.png"), completion.transpose(1, 2, 0))
    print(f"{len(results)} completion(s) of {args.image} -> {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
