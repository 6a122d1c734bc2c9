r"""Export two separately trained ICT stages (e.g. converted official weights) into one folder.

    python tools/ict_export.py \
        --transformer configs/ict_transformer_places2.yml --transformer_weights W_T.pdparams \
        --upsampler configs/ict_upsample_places2.yml --upsampler_weights W_U.pdparams \
        --save_dir export/ict_places2 [--n_samples 4 --seed 0] [--onnx] [--no_tune]
    python deploy/infer.py --model_dir export/ict_places2 --input photo.png --mask hole.png --output out/

The two stage models are joined into an ICTModel and written by the one export pipeline
(ppir.inference.export), exactly as `tools/export.py -c <ICTModel config>` writes a jointly
trained one: `transformer/` (the row logits graph; with --onnx also as ONNX), `upsampler/`,
`palette.npy` and `inference.yml` (`task: ict`). Each graph is checked against dygraph on every
CPU path and timed; nothing is written on a mismatch.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: F401,E402
from ppir.errors import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformer", required=True, help="transformer config (.yml)")
    parser.add_argument("--transformer_weights", required=True)
    parser.add_argument("--upsampler", required=True, help="upsampler config (.yml)")
    parser.add_argument("--upsampler_weights", required=True, help="generator weights or a checkpoint dir")
    parser.add_argument("--save_dir", required=True)
    parser.add_argument("--n_samples", type=int, default=1, help="default samples per image")
    parser.add_argument("--seed", type=int, default=0, help="default sampling seed")
    parser.add_argument("--onnx", action="store_true", help="also write the logits graph as ONNX (an onnxruntime path)")
    parser.add_argument("--no_tune", action="store_true", help="skip timing the CPU paths")
    args = parser.parse_args(argv)
    if args.n_samples < 1 or args.seed < 0:
        parser.error("--n_samples must be >= 1 and --seed >= 0")
    return args


def build(config, weights):
    """A stage's task model from its config with `weights` loaded, in eval mode."""
    from ppir.config import load_config
    from ppir.engine.checkpoint import build_trained_model

    return build_trained_model(load_config(config, [f"Global.pretrained_model={weights}", "Global.device=cpu"]))


def main(argv=None):
    args = parse_args(argv)
    from ppir.inference.export import check_save_dir, export_model
    from ppir.models.ict_model import ICTModel

    check_save_dir(args.save_dir, [(p, flag) for p, flag in ((args.transformer, "--transformer"),
                                                            (args.transformer_weights, "--transformer_weights"),
                                                            (args.upsampler, "--upsampler"),
                                                            (args.upsampler_weights, "--upsampler_weights"))])
    model = ICTModel.from_stages(build(args.transformer, args.transformer_weights),
                                 build(args.upsampler, args.upsampler_weights), args.n_samples, args.seed)
    export_model(model, args.save_dir, onnx=args.onnx, tune=not args.no_tune)
    return 0


if __name__ == "__main__":
    run_cli(main)
