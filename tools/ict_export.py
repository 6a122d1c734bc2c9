r"""Export two separately trained ICT stages into one folder for deploy/infer.py.

    python tools/ict_export.py \
        --transformer configs/ict_transformer_places2.yml --transformer_weights W_T.pdparams \
        --upsampler configs/ict_upsample_places2.yml --upsampler_weights W_U.pdparams \
        --save_dir export/ict_places2 [--n_samples 4 --seed 0] [--onnx] [--no_tune]
    python deploy/infer.py --model_dir export/ict_places2 --input photo.png --mask hole.png --output out/

A thin wrapper of the one ICT export path: the two stage models are joined into an ICTModel
and written by tools/export.py (`export_stages`), exactly as `tools/export.py -c <ICTModel config>`
writes a jointly trained one: `transformer/` (the logits graph: int64 tokens, mask and the
positions to sample in, their logits out; with --onnx also as inference.onnx), `upsampler/`
(image, mask, prior in, composite out), `palette.npy` and `inference.yml` (`task: ict`, both
stages, the sampling settings). Each graph is checked against dygraph first (the transformer's
logits on every CPU path); nothing is written on a mismatch. Unless --no_tune, one sampling step
is timed on each path and the fastest is recorded as the transformer's `default_path`, the one
deploy/infer.py runs.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: F401,E402
from ppir.errors import run_cli  # noqa: E402


def parse_args(argv=None):
    from tools.ict_inpaint import add_model_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--save_dir", required=True)
    parser.add_argument("--n_samples", type=int, default=1, help="default samples per image")
    parser.add_argument("--seed", type=int, default=0, help="default sampling seed")
    parser.add_argument("--onnx", action="store_true",
                        help="also write the logits graph as ONNX (an onnxruntime path)")
    parser.add_argument("--no_tune", action="store_true",
                        help="skip timing the CPU paths (deploy/infer.py then uses oneDNN)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppir.models.ict_model import ICTModel
    from tools.export import export_stages
    from tools.ict_inpaint import build

    transformer = build(args.transformer, args.transformer_weights, "cpu")
    upsampler = build(args.upsampler, args.upsampler_weights, "cpu")
    export_stages(ICTModel.from_stages(transformer, upsampler, args.n_samples, args.seed),
                  args.save_dir, onnx=args.onnx, tune=not args.no_tune)
    return 0


if __name__ == "__main__":
    run_cli(main)
