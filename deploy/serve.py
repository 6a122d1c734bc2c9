"""A local web page for exported ppir models: paint a hole and compare every inpainting model's
fill side by side; restore a photo and compare before/after. Built on Gradio (the optional extra:
`pip install -e .[demo]`) and on ppir's Python API (`ppir.load`) alone.

    python deploy/serve.py --model_dir inference/misf --model_dir inference/ict
    python deploy/serve.py --model_dir inference/        # every export folder below it
    python deploy/serve.py --model_dir inference/ --port 8080 --host 0.0.0.0

Scripts drive the same server through two named endpoints (gradio_client):
    /inpaint (image, mask, model, n_samples, seed) -> (results gallery, run info)
    /restore (image, model) -> (restored image, run info)
Model runs are queued and run one at a time. See docs/demo.md.
"""
import argparse
import contextlib
import os
import sys

if __package__ in (None, ""):  # run as a script: make `ppir` importable from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import ppir
from ppir.errors import ConfigError, DataError, ExportError, PpirError, run_cli
from ppir.inference import host
from ppir.inference.spec import SPEC_FILE

# Smaller uploads are icons or mistakes, not photos: there is nothing to paint a hole on.
MIN_SIDE = 16
DEFAULT_MAX_PIXELS = 2048 * 2048  # about a phone photo; the run time of a CPU model grows with the pixels
DEFAULT_MAX_FILE_SIZE = "20mb"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Every event that runs a model shares this concurrency group (limit 1): Paddle predictors are
# not re-entrant, and a CPU gains nothing from two models fighting over its cores.
MODEL_QUEUE = "models"
HOLE_TINT = np.array([255, 0, 255], np.float32)  # how the page shows the hole on the input
BRUSH_COLOR = ("#ff00ff", 0.6)  # painted strokes: magenta, see-through, so the photo stays visible


# ---- models ------------------------------------------------------------------------------------

def find_exports(dirs):
    """Each --model_dir that holds inference.yml, or else every export folder below it (sorted)."""
    found = []
    for top in dirs:
        if not os.path.isdir(top):
            raise ConfigError(f"--model_dir {top}: no such folder")
        below = []
        for root, subdirs, files in os.walk(top, followlinks=True):
            subdirs.sort()
            if SPEC_FILE in files:
                below.append(root)
                subdirs[:] = []  # an export's own sub-folders (ICT's stages) are not exports
        if not below:
            raise ExportError(f"--model_dir {top}: no {SPEC_FILE} in it or below it "
                              f"(write one with tools/export.py --save_dir)")
        found += below
    return found


def load_models(dirs, **options):
    """{label: model} for the export folders; a label is the folder's name (made unique with its
    parent's) and is what the page lists and the endpoints take as `model`."""
    models = {}
    for path in find_exports(dirs):
        norm = os.path.normpath(os.path.abspath(path))
        label = os.path.basename(norm)
        if label in models:
            label = os.path.join(os.path.basename(os.path.dirname(norm)), label)
        if label in models:
            raise ConfigError(f"--model_dir: two exports are both called {label}; rename one folder")
        models[label] = ppir.load(path, **options)
    return models


def describe(label, model):
    """How a run is captioned: the label, the network, the seconds and the path that ran."""
    run = model.last_run
    return {"model": label, "network": model.name, "seconds": round(float(run.get("seconds", 0.0)), 3),
            "inference_path": run.get("path", "")}


def runs_list(infos):
    """The page's record of its runs, one line each: model, network, seconds, path (a list, not a
    table, so that it wraps on a phone; gallery captions get cut short)."""
    return "\n".join(f"- **{i['model']}** ({i['network']}): {i['seconds']:.2f} s, {i['inference_path']}"
                     for i in infos)


def caption(info, sample=None):
    which = f" sample {sample[0] + 1}/{sample[1]}" if sample else ""
    return f"{info['model']}{which} · {info['seconds']:.2f} s · {info['inference_path']}"


# ---- uploads -----------------------------------------------------------------------------------

def check_size(width, height, what, max_pixels):
    if width * height > max_pixels:
        raise DataError(f"the {what} is {width}x{height} ({width * height / 1e6:.1f} MP); this server takes "
                        f"at most {max_pixels / 1e6:.1f} MP (deploy/serve.py --max_pixels)")
    if min(width, height) < MIN_SIDE:
        raise DataError(f"the {what} is {width}x{height} pixels; the page needs at least {MIN_SIDE} a side")


def read_upload(payload, what, max_pixels):
    """An uploaded file (Gradio's payload: a dict whose `path` Gradio has checked is one of its
    own uploads) as a uint8/uint16 array, its pixel count checked before it is decoded; None when
    nothing was uploaded. `what` names it in errors ("photo", "mask")."""
    if payload is None:
        return None
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = payload["path"] if isinstance(payload, dict) else payload
    try:
        with Image.open(path) as im:
            check_size(*im.size, what, max_pixels)
            im = ImageOps.exif_transpose(im)  # as the browser shows a rotated phone photo
            if im.mode.startswith("I;16"):
                return np.asarray(im, dtype=np.uint16)
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if im.mode in ("LA", "PA", "P") else "RGB")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise DataError(f"the uploaded {what} is not an image file (PNG, JPEG, BMP, TIFF or WebP)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"the {what} could not be decoded ({exc})") from None


def editor_inputs(value, max_pixels):
    """(photo, painted hole or None) from the image editor's value: the background is the photo,
    and every pixel painted on any layer (alpha > 0, stroke edges included) is hole."""
    photo = None if value is None else value.get("background")
    if photo is None:
        raise DataError("upload a photo first")
    check_size(photo.shape[1], photo.shape[0], "photo", max_pixels)
    painted = None
    for layer in value.get("layers") or []:
        if layer.shape[:2] != photo.shape[:2]:
            raise DataError(f"a painted layer is {layer.shape[1]}x{layer.shape[0]} but the photo is "
                            f"{photo.shape[1]}x{photo.shape[0]}")
        if layer.ndim == 3 and layer.shape[2] == 4:
            stroke = layer[:, :, 3] > 0
            painted = stroke if painted is None else painted | stroke
    if painted is not None and not painted.any():
        painted = None
    return photo, painted


def page_mask(painted, uploaded, hw):
    """The hole the page sends: the uploaded mask (white = hole) and the painted strokes together."""
    if uploaded is None and painted is None:
        raise DataError("paint the hole with the brush, or upload a mask (white = hole)")
    if uploaded is None:
        return painted
    hole = host.as_mask(uploaded, hw, "white", "the uploaded mask") > 0
    return hole if painted is None else hole | painted


def as_uint8(image):
    """An upload as the HxWx3 uint8 RGB the page shows (gray, 16-bit and opaque RGBA included)."""
    return (host.as_image(image, "photo") * 255.0).round().astype(np.uint8)


def tinted(image, mask):
    """The photo with its hole tinted, as the page shows the input next to the fills."""
    rgb = as_uint8(image).astype(np.float32)
    rgb[mask] = 0.4 * rgb[mask] + 0.6 * HOLE_TINT
    return rgb.round().astype(np.uint8)


@contextlib.contextmanager
def shown_in_page():
    """ppir's one-sentence errors go to the page (or the API client) as they are."""
    import gradio as gr

    try:
        yield
    except PpirError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


# ---- runs --------------------------------------------------------------------------------------

class Runner:
    """The loaded models and the two things the page and the endpoints do with them."""

    def __init__(self, models, max_pixels=DEFAULT_MAX_PIXELS):
        self.models, self.max_pixels = models, max_pixels
        self.inpainters = [k for k, m in models.items() if m.needs_mask]
        self.restorers = [k for k, m in models.items() if not m.needs_mask]

    def model(self, label, kind):
        names = self.inpainters if kind == "inpainting" else self.restorers
        if label not in names:
            known = ", ".join(names) or "none loaded"
            raise DataError(f"no {kind} model called {label!r} (this server has: {known})")
        return self.models[label]

    def inpaint(self, image, mask, label, n_samples=None, seed=None, progress=None):
        """[(completion, caption), ...] (ICT: one per sample) and the run's info."""
        model = self.model(label, "inpainting")
        options = {}
        if model.samples:
            options = {"n_samples": None if n_samples is None else int(n_samples),
                       "seed": None if seed is None else int(seed)}
        outs = model(image, mask=mask, progress=progress or False, **options)
        info = describe(label, model)
        if not model.samples:
            return [(outs, caption(info))], info
        info["seed"] = getattr(model, "seed", None) if options["seed"] is None else options["seed"]
        return [(out, caption(info, (i, len(outs)))) for i, out in enumerate(outs)], info

    def restore(self, image, label, progress=None):
        model = self.model(label, "restoration")
        out = model(image, progress=progress or False)
        return out, describe(label, model)


def page_progress(progress, label):
    """The API's progress(done, total, what) drawn on Gradio's bar, named after the model."""
    def update(done, total, what):
        progress((done, total), desc=f"{label}: {what}", unit=what)
    return update


# ---- the page ----------------------------------------------------------------------------------

CSS = """
footer { display: none !important; }
@media (max-width: 640px) { #ppir-results .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; } }
"""


def build_app(runner):
    """The Gradio Blocks app: an Inpaint tab, a Restore tab, and the /inpaint and /restore
    endpoints. Every event reads its uploads itself (preprocess=False) so a bad file gets a
    sentence in the page instead of a decoder's traceback."""
    import gradio as gr
    from gradio.components.image_editor import EditorData

    with gr.Blocks(title="ppir: inpaint and restore", analytics_enabled=False) as app:
        gr.Markdown("## ppir: inpaint and restore photos\nEach model runs the exported graph on this "
                    "machine's CPU; runs are queued one at a time.")
        with gr.Tab("Inpaint", visible=bool(runner.inpainters)):
            with gr.Row(equal_height=True):
                picked = gr.CheckboxGroup(runner.inpainters, value=runner.inpainters[:2], label="Inpainting models",
                                          scale=2, min_width=240, elem_id="ppir-models")
                sampling = any(runner.models[k].samples for k in runner.inpainters)
                n_samples = gr.Slider(1, 8, value=2, step=1, label="ICT: samples", visible=sampling, scale=1,
                                      min_width=160, elem_id="ppir-samples")
                seed = gr.Number(0, precision=0, minimum=0, label="ICT: seed", visible=sampling, scale=1,
                                 min_width=100, elem_id="ppir-seed")
                run_inpaint = gr.Button("Fill the hole", variant="primary", scale=1, min_width=140,
                                        elem_id="ppir-inpaint")
            with gr.Row(equal_height=False):
                with gr.Column(min_width=300):
                    editor = gr.ImageEditor(
                        label="Photo: paint over what should go", type="numpy", image_mode="RGBA",
                        sources=["upload", "clipboard"], transforms=(), layers=False, format="png",
                        brush=gr.Brush(colors=[BRUSH_COLOR], color_mode="fixed"), eraser=gr.Eraser(),
                        canvas_size=(640, 480), elem_id="ppir-editor")
                    mask_file = gr.Image(label="Or upload a mask (white = hole, the photo's size)",
                                         type="filepath", image_mode=None, sources=["upload"], height=120,
                                         elem_id="ppir-mask")
                with gr.Column(min_width=300):
                    results = gr.Gallery(label="Input and results (click to enlarge, download as PNG)",
                                         format="png", columns=3, height=460, object_fit="contain",
                                         buttons=["download", "fullscreen"], elem_id="ppir-results")
                    inpaint_runs = gr.Markdown(elem_id="ppir-inpaint-runs")

        with gr.Tab("Restore", visible=bool(runner.restorers)):
            with gr.Row(equal_height=True):
                restorer = gr.Dropdown(runner.restorers, value=(runner.restorers or [None])[0],
                                       label="Restoration model", scale=3, elem_id="ppir-restorer")
                run_restore = gr.Button("Restore", variant="primary", scale=1, min_width=140, elem_id="ppir-restore")
            with gr.Row(equal_height=False):
                with gr.Column(min_width=300):
                    photo = gr.Image(label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                     elem_id="ppir-photo")
                with gr.Column(min_width=300):
                    slider = gr.ImageSlider(label="Before / after (download as PNG)", format="png",
                                            buttons=["download", "fullscreen"], elem_id="ppir-slider")
                    restore_runs = gr.Markdown(elem_id="ppir-restore-runs")

        # The named endpoints: plain inputs for scripts, on components the page never shows.
        with gr.Row(visible=False):
            api_image = gr.Image(type="filepath", image_mode=None, label="image")
            api_mask = gr.Image(type="filepath", image_mode=None, label="mask (white = hole)")
            api_inpainter = gr.Dropdown(runner.inpainters, label="model")
            api_samples = gr.Number(None, precision=0, label="n_samples (ICT)")
            api_seed = gr.Number(None, precision=0, label="seed (ICT)")
            api_restorer = gr.Dropdown(runner.restorers, label="model")
            api_gallery = gr.Gallery(format="png", label="results")
            api_restored = gr.Image(format="png", label="restored")
            api_info = gr.JSON(label="info")
            api_inpaint, api_restore = gr.Button(), gr.Button()

        def inpaint_page(editor_value, mask_payload, labels, count, seed_value, progress=gr.Progress()):
            with shown_in_page():
                try:
                    value = editor.preprocess(EditorData(**editor_value)) if editor_value else None
                except Exception as exc:  # the browser's canvas blobs did not decode
                    raise DataError(f"the photo could not be decoded ({exc})") from None
                image, painted = editor_inputs(value, runner.max_pixels)
                uploaded = read_upload(mask_payload, "mask", runner.max_pixels)
                mask = page_mask(painted, uploaded, image.shape[:2])
                if not labels:
                    raise DataError("pick at least one inpainting model")
                gallery, infos = [(tinted(image, mask), "input: the hole in magenta")], []
                for label in labels:
                    progress(0, desc=label)
                    items, info = runner.inpaint(image, mask, label, count, seed_value,
                                                 page_progress(progress, label))
                    gallery += items
                    infos.append(info)
                return gallery, runs_list(infos)

        def restore_page(photo_payload, label, progress=gr.Progress()):
            with shown_in_page():
                image = read_upload(photo_payload, "photo", runner.max_pixels)
                if image is None:
                    raise DataError("upload a photo first")
                out, info = runner.restore(image, label, page_progress(progress, label))
                return (as_uint8(image), out), runs_list([info])

        def inpaint_api(image_payload, mask_payload, label, count=None, seed_value=None, progress=gr.Progress()):
            """Inpaint one image: mask white = hole; ICT takes n_samples and seed."""
            with shown_in_page():
                image = read_upload(image_payload, "image", runner.max_pixels)
                mask = read_upload(mask_payload, "mask", runner.max_pixels)
                if image is None or mask is None:
                    raise DataError("/inpaint needs an image and a mask (white = hole)")
                return runner.inpaint(image, mask, label, count, seed_value, page_progress(progress, label))

        def restore_api(image_payload, label, progress=gr.Progress()):
            """Restore one image (denoise or deblur, as the model was trained)."""
            with shown_in_page():
                image = read_upload(image_payload, "image", runner.max_pixels)
                if image is None:
                    raise DataError("/restore needs an image")
                return runner.restore(image, label, page_progress(progress, label))

        queued = dict(preprocess=False, concurrency_id=MODEL_QUEUE, concurrency_limit=1)
        run_inpaint.click(inpaint_page, [editor, mask_file, picked, n_samples, seed], [results, inpaint_runs],
                          api_visibility="private", **queued)
        run_restore.click(restore_page, [photo, restorer], [slider, restore_runs], api_visibility="private",
                          **queued)
        api_inpaint.click(inpaint_api, [api_image, api_mask, api_inpainter, api_samples, api_seed],
                          [api_gallery, api_info], api_name="inpaint", **queued)
        api_restore.click(restore_api, [api_image, api_restorer], [api_restored, api_info], api_name="restore",
                          **queued)
    return app


def theme():
    """Gradio's default look with the system's fonts: the default theme fetches Google Fonts,
    and a local server must work with no internet."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])


# ---- command line ------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", action="append", required=True,
                        help="an export folder (tools/export.py --save_dir) or a folder of them; repeat for more")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"largest upload in pixels (default {DEFAULT_MAX_PIXELS}, 2048x2048)")
    parser.add_argument("--max_file_size", default=DEFAULT_MAX_FILE_SIZE,
                        help=f"largest upload file (default {DEFAULT_MAX_FILE_SIZE})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--cpu_threads", type=int, default=None, help="default: all cores of this process")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.max_pixels < MIN_SIDE * MIN_SIDE:
        parser.error(f"--max_pixels must be at least {MIN_SIDE * MIN_SIDE}, got {args.max_pixels}")
    return args


def exposure_warning(host_name, port):
    """The one line printed when the page is served beyond this machine (None when it is not)."""
    if host_name in LOCAL_HOSTS:
        return None
    return (f"warning: serving on {host_name}:{port}: anyone who can reach this machine can run the models "
            f"(there is no login); use the default --host 127.0.0.1 to keep it local")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("the web page needs Gradio: pip install -e .[demo]") from None
    runner = Runner(load_models(args.model_dir, device=args.device, cpu_threads=args.cpu_threads),
                    args.max_pixels)
    print("models: " + ", ".join(f"{k} ({m.name}, {m.task})" for k, m in runner.models.items()), flush=True)
    warning = exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = build_app(runner)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size,
               theme=theme(), css=CSS, show_error=False, inbrowser=False, share=False, quiet=False)
    return 0


if __name__ == "__main__":
    run_cli(main)
