"""Export a trained model as a static inference model, and prove the export right.

    python tools/export.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=W --save_dir DIR
    python tools/export.py -c CFG -o Global.pretrained_model=W --save_dir DIR --onnx [--opset 13]

Writes DIR/inference.json + inference.pdiparams (Paddle 3 PIR format; a two-stage model such as
ICT writes one folder per graph), DIR/inference.yml (everything ppir.load and deploy/infer.py
need) and, with --onnx, DIR/inference.onnx. Before anything lands in DIR, each saved graph is run
with Paddle Inference (oneDNN on and off) and, with --onnx, onnxruntime, and must match the
dygraph network to --atol (max abs diff); the verified paths are then timed and the fastest per
size becomes the default. A failure exits 2 and leaves DIR as it was; DIR may hold other files
(TIPC exports sit next to checkpoints): only export files are replaced. The pipeline is
ppir.inference.export; every step is printed as it happens.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: F401,E402  (sets GLOG/OMP defaults before paddle is imported)
from ppir.config import add_config_arguments, config_from_args  # noqa: E402
from ppir.errors import CheckpointError, ExportError, run_cli  # noqa: E402


def parse_sizes(text):
    """'256x256,1280x720' -> [(256, 256), (720, 1280)] as (H, W), sorted by pixel count."""
    sizes = []
    for item in str(text).split(","):
        try:
            w, h = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise ExportError(f"--tune_sizes {text!r}: expected WxH[,WxH...], e.g. 256x256,1280x720") from None
        if w < 1 or h < 1:
            raise ExportError(f"--tune_sizes {text!r}: sizes must be positive")
        sizes.append((h, w))
    return sorted(sizes, key=lambda hw: hw[0] * hw[1])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--save_dir", required=True, help="directory for the exported files")
    parser.add_argument("--onnx", action="store_true", help="also write inference.onnx (paddle2onnx)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.add_argument("--atol", type=float, default=None,
                        help="max abs difference allowed against dygraph (default 1e-5; ICT's graphs 1e-4)")
    parser.add_argument("--tune_sizes", default=None, metavar="WxH,...",
                        help="input sizes the CPU paths are timed on (default: the model's, 256x256,1280x720 "
                             "for restoration and 256x256,512x512 for inpainting)")
    parser.add_argument("--no_tune", action="store_true",
                        help="skip timing the CPU paths (deploy/infer.py then defaults to oneDNN)")
    parser.add_argument("--allow_random", action="store_true",
                        help="export untrained (seeded random) weights when Global.pretrained_model is unset")
    args = parser.parse_args(argv)
    if args.tune_sizes is not None:
        args.tune_sizes = parse_sizes(args.tune_sizes)
    if args.atol is not None and not args.atol > 0:
        parser.error(f"--atol must be > 0, got {args.atol}")
    return args


def build(cfg, weights):
    """The config's task model with the weights every exported graph needs."""
    import paddle

    from ppir.engine.checkpoint import load_pretrained
    from ppir.models import build_model

    paddle.set_device("cpu")
    paddle.seed(int(cfg["Global"].get("seed") or 0))
    model = build_model(cfg)
    if not weights:
        print("warning: Global.pretrained_model is not set; exporting random weights", file=sys.stderr)
        return model
    loaded = load_pretrained(model, weights)
    missing = [n for n in getattr(model, "export_networks", (model.primary,)) if n not in loaded]
    if missing:
        raise CheckpointError(f"Global.pretrained_model {weights} has no weights for {', '.join(missing)} "
                              f"(the export needs them): pass a checkpoint dir holding them or a mapping "
                              f"{{network: file}}")
    return model


def main(argv=None):
    from ppir.engine.checkpoint import WEIGHTS
    from ppir.inference.export import check_save_dir, export_model

    args = parse_args(argv)
    cfg = config_from_args(args)
    weights = cfg["Global"]["pretrained_model"]
    if not weights and not args.allow_random:
        raise CheckpointError("no weights to export: pass -o Global.pretrained_model=PATH "
                              "(or --allow_random to export untrained weights)")
    read = os.path.join(weights, WEIGHTS) if isinstance(weights, str) and os.path.isdir(weights) else weights
    reads = [(args.config, "-c")] + ([(read, "Global.pretrained_model")] if isinstance(read, str) else
                                     [(p, "Global.pretrained_model") for p in (read or {}).values()])
    check_save_dir(args.save_dir, reads)
    print(f"building {cfg['Model']['name']} from {args.config}", flush=True)
    export_model(build(cfg, weights), args.save_dir, cfg=cfg, atol=args.atol, onnx=args.onnx, opset=args.opset,
                 tune=not args.no_tune, tune_sizes=args.tune_sizes)
    return 0


if __name__ == "__main__":
    run_cli(main)
