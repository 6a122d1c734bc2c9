r"""Convert a released checkpoint (PyTorch, MindSpore or Paddle) to a ppir `.pdparams` file.

    python tools/convert_weights.py --arch MIRNetV2 --src real_denoising.pth --dst mirnetv2_sidd.pdparams
    python tools/convert_weights.py --arch MIRNetV2 --src dual_pixel_defocus_deblurring.pth \
        --dst mirnetv2_dpdd.pdparams --network-args '{"inp_channels": 6, "task": "defocus_deblurring"}'
    python tools/convert_weights.py --arch MISFGenerator --src places2_InpaintingModel_gen.pth \
        --dst misf_places2_gen.pdparams
    python tools/convert_weights.py --arch CTSDGGenerator --src celeba.pth --dst ctsdg_g.pdparams
    python tools/convert_weights.py --arch MIMOUNet --src MIMO-UNet_3000_1_fp16_o3_dls.ckpt \
        --dst mimounet_ms.pdparams
    python tools/convert_weights.py --arch MIRNetV2 --src model_best.pdparams --dst mirnetv2_sldyns.pdparams

The format is read off the file's first bytes: a torch.save `.pth` (torch is not needed for the
zip format of torch >= 1.6), a MindSpore `.ckpt` (MindSpore is not needed) or a paddle.save
pickle of another Paddle code base. The output loads with `net.set_state_dict(paddle.load(dst))`
with no missing and no unexpected keys.
"""
import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.errors import ConfigError, run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, help="registered network name, e.g. MIRNetV2")
    parser.add_argument("--src", required=True,
                        help="released checkpoint: torch .pth, MindSpore .ckpt or Paddle .pdparams")
    parser.add_argument("--dst", required=True, help="output Paddle weights (.pdparams)")
    parser.add_argument("--network-args", default=None,
                        help="JSON object of constructor keywords, e.g. '{\"inp_channels\": 6}'")
    parser.add_argument("--param-key", default=None,
                        help="key holding the state dict inside the file (default: the "
                             "architecture's release wrapper, e.g. 'params' or 'model'); for a "
                             "MindSpore .ckpt, the name prefix of the network's parameters")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --dst that ppir did not write")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    network_args = {}
    if args.network_args:
        try:
            network_args = json.loads(args.network_args)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--network-args is not valid JSON: {exc}") from None
        if not isinstance(network_args, dict):
            raise ConfigError(f"--network-args must be a JSON object, got {args.network_args}")

    from ppir.models import NETWORKS
    from ppir.models.convert import convert_checkpoint
    from ppir.utils.paths import check_outputs, record_outputs, refuse_overlap

    if args.arch not in NETWORKS:  # before reading a (possibly large) --src
        raise ConfigError(f"--arch: unknown network '{args.arch}'; known: "
                          f"{', '.join(NETWORKS.names())}")
    refuse_overlap([(args.dst, "--dst")], [(args.src, "--src")])
    check_outputs([args.dst], args.overwrite, "--dst")
    notes = []
    state = convert_checkpoint(args.arch, args.src, args.dst, network_args, args.param_key, notes)
    record_outputs([args.dst], "--dst")
    for note in notes:
        print(f"note: {note}")
    n_params = sum(int(v.size) for v in state.values())
    print(f"converted {len(state)} tensors ({n_params:,} values) for {args.arch}: "
          f"{args.src} -> {args.dst}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore", message="No ccache found")  # printed by `import paddle`
    run_cli(main)
