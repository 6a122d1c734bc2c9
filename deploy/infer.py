"""Run an exported ppir model (Paddle Inference or onnxruntime) on an image or a folder of images.

    python deploy/infer.py --model_dir DIR --input noisy.png --output restored.png
    python deploy/infer.py --model_dir DIR --input noisy_dir/       # -> ./output/infer/<model_name>/
    python deploy/infer.py --model_dir DIR --input noisy_dir/ --output out_dir/ --gt clean_dir/
    python deploy/infer.py --model_dir DIR --input photo.png --mask hole.png --output filled.png
    python deploy/infer.py --model_dir DIR --input big.png --output out.png --tile 512 --tile_overlap 32
    python deploy/infer.py --model_dir DIR --input dir/ --output out/ --benchmark True --cpu_threads 2

Everything about the model comes from DIR/inference.yml (written by tools/export.py); no training
config is needed. A thin command line over `ppir.load` (docs/api.md); boolean flags take
True/False values, as TIPC passes them (`--enable_mkldnn=True`). See docs/deploy.md.
"""
import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make `ppir` importable from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: E402  (sets GLOG/OMP defaults before paddle is imported)
from ppir.errors import DataError, PpirError, run_cli  # noqa: E402
from ppir.inference import files, host  # noqa: E402
from ppir.inference.predictor import PRECISIONS  # noqa: E402
from ppir.inference.spec import load_spec, needs_mask  # noqa: E402


def str2bool(text):
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="export directory (tools/export.py --save_dir)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--mask", default=None,
                        help="mask file or folder (paired with --input by file name), for models that take a mask")
    parser.add_argument("--mask_hole_value", default="white", choices=("white", "black"),
                        help="which side of the mask files is the hole (default white)")
    parser.add_argument("--output", default=None,
                        help="an image file (one input) or a folder (default: ./output/infer/<model_name>/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files that ppir did not write")
    parser.add_argument("--gt", default=None, help="ground truth file or folder: prints PSNR/SSIM")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--enable_mkldnn", type=str2bool, default=None,
                        help="oneDNN on CPU (default: the path tools/export.py measured fastest at the "
                             "size nearest to the input, inference.yml default_path_by_size; else True)")
    parser.add_argument("--cpu_threads", type=int, default=None, help="default: all cores of this process")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--use_tensorrt", type=str2bool, default=False)
    parser.add_argument("--batch_size", type=int, default=1, help="images of equal size run together")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size for large images (default: inference.yml tile; 0 = whole image)")
    parser.add_argument("--tile_overlap", type=int, default=None, help="default: inference.yml tile_overlap")
    parser.add_argument("--benchmark", type=str2bool, default=False, help="print the AutoLog-format report")
    parser.add_argument("--backend", default=None, choices=("paddle", "onnxruntime"),
                        help="default: the path tools/export.py measured fastest at the size nearest to "
                             "the input (inference.yml default_path_by_size); else paddle")
    parser.add_argument("--n_samples", type=int, default=None,
                        help="ICT: completions per image (default: inference.yml sampling)")
    parser.add_argument("--seed", type=int, default=None, help="ICT: sampling seed (default: inference.yml sampling)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name, low in (("batch_size", 1), ("cpu_threads", 1), ("n_samples", 1), ("seed", 0), ("tile", 0),
                      ("tile_overlap", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f"--{name} must be >= {low}, got {value}")
    return args


def plan(args, spec):
    """(inputs, masks, gts, outputs) with every output path checked before any work: before the
    model is loaded, from its inference.yml alone."""
    if args.mask and not needs_mask(spec):
        raise DataError(f"--mask given, but the model in {args.model_dir} takes no mask (inference.yml inputs)")
    if needs_mask(spec) and not args.mask:
        raise DataError(f"the model in {args.model_dir} needs a mask: pass --mask (white = hole; "
                        f"--mask_hole_value black for masks drawn the other way)")
    if not (args.output or "").strip():  # absent, or an empty value from a harness (`--output=`)
        args.output = files.default_output_dir(spec)
        print(f"no --output given: writing results to {args.output}")
    inputs = files.list_inputs(args.input)
    masks = files.match_files(inputs, args.mask, "--mask") if args.mask else [None] * len(inputs)
    gts = files.match_files(inputs, args.gt, "--gt") if args.gt else [None] * len(inputs)
    reads = [(args.mask, "--mask"), (args.gt, "--gt"), (args.model_dir, "--model_dir")]
    reads += [(p, "--mask") for p in masks] + [(p, "--gt") for p in gts]
    outputs = files.plan_outputs(args.input, inputs, args.output, reads, overwrite=args.overwrite)
    if spec.get("task") == "ict":  # every sample and its prior, `<name>_sample<k>.png`, `<name>_prior<k>.png`
        k = (spec.get("sampling") or {}).get("n_samples", 1) if args.n_samples is None else args.n_samples
        outputs = [[(f"{root}_sample{i}{ext or '.png'}", f"{root}_prior{i}.png") for i in range(k)]
                   for root, ext in map(os.path.splitext, outputs)]
        files.check_outputs([p for per in outputs for pair in per for p in pair], args.overwrite)
    return inputs, masks, gts, outputs


def load_pair(model, image_path, mask_path, hole_value):
    """(HxWx3 float image, HxW mask or None) of one input file and its mask file."""
    image = host.as_image(image_path)
    return image, model.read_mask(mask_path, image.shape[:2], hole_value) if mask_path else None


def build_metrics(spec):
    from ppir.metrics import METRICS, build_metrics as build

    cfgs = spec.get("metrics") or [{"name": "PSNR"}, {"name": "SSIM"}]
    # A set metric (FID) scores a whole evaluation set, not one image: tools/eval.py reports it.
    cfgs = [c for c in cfgs if not (isinstance(c, dict) and c.get("name") in METRICS
                                    and getattr(METRICS.get(c["name"]), "per_set", False))]
    return build(cfgs, where="inference.yml metrics")


def score(metrics, img, gt_path, input_path):
    """The metrics of one result against its ground truth; DataError if the two do not fit."""
    from ppir.data.image_io import read_image

    gt = read_image(gt_path)
    if gt.shape != img.shape:
        raise DataError(f"--gt {gt_path} is {gt.shape[1]}x{gt.shape[0]}, but the result for "
                        f"{input_path} is {img.shape[1]}x{img.shape[0]}")
    return {m.name: m(img, gt) for m in metrics}


def write_results(model, out, destination):
    from ppir.data.image_io import write_image

    if model.samples:
        for (sample_path, prior_path), result, prior in zip(destination, out, model.last_run["priors"][0]):
            write_image(sample_path, result)
            write_image(prior_path, prior)
    else:
        write_image(destination, out)


def main(argv=None):
    import numpy as np

    from ppir.inference.progress import Progress
    from ppir.utils.paths import record_outputs

    args = parse_args(argv)
    inputs, masks, gts, outputs = plan(args, load_spec(args.model_dir))
    model = ppir.load(args.model_dir, device=args.device, backend=args.backend, enable_mkldnn=args.enable_mkldnn,
                      cpu_threads=args.cpu_threads, precision=args.precision, use_tensorrt=args.use_tensorrt,
                      tile=args.tile, tile_overlap=args.tile_overlap)
    metrics = build_metrics(model.spec) if args.gt and not model.samples else []
    flat = [p for per in outputs for pair in per for p in pair] if model.samples else outputs
    record_outputs(flat)
    failures = files.Failures(len(inputs))
    progress = not args.quiet
    sampling = {"n_samples": args.n_samples, "seed": args.seed} if model.samples else {}
    logger = benchmark_logger(args, model, inputs, masks, sampling) if args.benchmark else None
    scores = {m.name: [] for m in metrics}
    written = 0
    batch = 1 if model.samples else args.batch_size
    with Progress(progress and len(inputs) > 1, len(inputs), "images") as bar:
        for start in range(0, len(inputs), batch):
            index = range(start, min(start + batch, len(inputs)))
            if logger:
                logger.times.start()
            loaded = []
            for i in index:
                try:
                    loaded.append((i,) + load_pair(model, inputs[i], masks[i], args.mask_hole_value))
                except PpirError as exc:
                    failures.add(inputs[i], exc)
            if logger:
                logger.times.stamp()
            try:
                outs = model.run([img for _, img, _ in loaded], [m for _, _, m in loaded],
                                 progress=progress, **sampling) if loaded else []
                results = [i for i, _, _ in loaded]
            except PpirError as exc:
                for i, _, _ in loaded:
                    failures.add(inputs[i], exc)
                outs, results = [], []
            if logger:
                logger.times.stamp()
            for i, out in zip(results, outs):
                write_results(model, out, outputs[i])
                written += 1
            if logger:
                logger.times.end(stamp=True)
            for i, out in zip(results, outs):  # scoring is not part of the timed postprocess
                if gts[i]:
                    try:
                        values = score(metrics, out, gts[i], inputs[i])
                    except DataError as exc:
                        failures.add(inputs[i], exc)
                        continue
                    for name, value in values.items():
                        scores[name].append(value)
                    print(f"{os.path.basename(inputs[i])}  " + "  ".join(f"{k}: {v:.4f}" for k, v in values.items()))
            bar.step(len(index))
    if metrics and scores[metrics[0].name]:
        print(f"mean over {len(scores[metrics[0].name])} images  "
              + "  ".join(f"{k}: {np.mean(v):.4f}" for k, v in scores.items()))
    what = f"{model.n_samples if args.n_samples is None else args.n_samples} sample(s) for each of " if model.samples else ""
    print(f"wrote {what}{written} image(s) to {args.output}")
    if logger:
        if model.samples:
            print(f"ICT: {model.last_run.get('path')}")
        logger.report()
    return failures.exit_code()


def benchmark_logger(args, model, inputs, masks, sampling):
    """The AutoLog report, after one untimed warm-up run (oneDNN primitives and TensorRT engines
    are built on the first run of a shape); prints the path that runs."""
    from ppir.utils.benchmark_log import AutoLogger

    for i in range(len(inputs)):
        try:
            img, mask = load_pair(model, inputs[i], masks[i], args.mask_hole_value)
        except PpirError:
            continue
        try:
            model.run([img], [mask], **sampling)
        except PpirError:  # the run reports it per image
            pass
        break
    print(f"path: {model.last_run.get('path')}" + (f" ({model.last_run['why']})" if model.last_run.get("why") else ""))
    status = next(iter(model._predictors.values())).config_status() if getattr(model, "_predictors", None) else {}
    return AutoLogger(model.name, args.precision, batch_size=args.batch_size, data_shape="dynamic",
                      inference_config=status)


if __name__ == "__main__":
    run_cli(main)
