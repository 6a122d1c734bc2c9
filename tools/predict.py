"""Restore an image or a folder of images with a trained checkpoint (dygraph, no export needed).

    python tools/predict.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=W --input noisy.png --output out.png
    python tools/predict.py -c CFG -o Global.pretrained_model=W --input noisy_dir/ --output restored_dir/
"""
import argparse

import ppir  # noqa: F401
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="an image file (for one input) or a folder")
    parser.add_argument("--ensemble", action="store_true", help="x8 geometric self-ensemble")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files ppir did not write")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    import numpy as np
    import paddle

    from ppir.data.image_io import read_image, write_image
    from ppir.engine.checkpoint import build_trained_model
    from ppir.errors import DataError
    from ppir.utils import inference_io as io
    from ppir.utils.ensemble import ensemble_forward
    from ppir.utils.paths import record_outputs

    inputs = io.list_inputs(args.input)
    reads = [(args.config, "-c"), (cfg["Global"]["pretrained_model"], "Global.pretrained_model")]
    outputs = io.plan_outputs(args.input, inputs, args.output, reads, overwrite=args.overwrite)
    model = build_trained_model(cfg)
    record_outputs(outputs)

    def forward(batch):
        return model.predict({"input": paddle.to_tensor(batch)}).numpy()

    failures = io.Failures(len(inputs))
    for src, dst in zip(inputs, outputs):
        try:
            batch = read_image(src).transpose(2, 0, 1)[None]
        except DataError as exc:
            failures.add(src, exc)
            continue
        out = ensemble_forward(forward, batch) if args.ensemble else forward(batch)
        write_image(dst, np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0))
        print(f"{src} -> {dst}")
    return failures.exit_code()


if __name__ == "__main__":
    run_cli(main)
