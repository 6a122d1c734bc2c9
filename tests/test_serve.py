"""deploy/serve.py, the web page: exports found and labelled, uploads read and refused in one
sentence, painted layers turned into the hole; then the real server (a subprocess on a free
127.0.0.1 port, over tiny seeded exports of MISF, ICT and MIRNetV2) driven by gradio_client
through /inpaint and /restore, and by headless Chromium (selenium) through the page: upload a
photo, paint a stroke, fill it with two models, compare; screenshots at 1280x800 and 390x844
land in output/test_serve/.

The server tests need Gradio (`pip install -e .[demo]`); the browser test also needs selenium and
Debian's chromium + chromium-driver. Each skips, saying which is missing, without them.
"""
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from ppir.errors import ConfigError, DataError, ExportError
from tests.conftest import ROOT

SHOTS = os.path.join(ROOT, "output", "test_serve")
EXPORTS = {  # label: (demo config, overrides): seconds to export without timing
    "misf": ("misf_demo.yml", ["Model.networks.generator.residual_blocks=1"]),
    "ict": ("ict_demo.yml", []),
    "mirnetv2": ("mirnetv2_demo.yml", ["Model.network.n_feat=16", "Model.network.n_MRB=1"]),
}
MAX_PIXELS = 200 * 150  # the server's --max_pixels: the test photos fit, a 200x200 one does not


def _serve():
    spec = importlib.util.spec_from_file_location("ppir_deploy_serve", os.path.join(ROOT, "deploy", "serve.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = _serve()


def photo(h=120, w=160, seed=0):
    """A smooth colour photo-like image (coarse noise, bicubic up): nothing constant to hide behind."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = (rng.random((max(2, h // 20), max(2, w // 20), 3)) * 255).astype(np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


# ---- without a server ----------------------------------------------------------------------

def test_model_dirs_are_exports_or_folders_of_them(tmp_path):
    """A --model_dir holding inference.yml is one export; a folder of them lists each (sorted),
    never an export's own stage folders; a folder without any is refused by name."""
    for d in ("b_model", "a_model", "a_model/transformer", "nested/c_model"):
        (tmp_path / d).mkdir(parents=True)
    for d in ("b_model", "a_model", "a_model/transformer", "nested/c_model"):
        (tmp_path / d / "inference.yml").write_text("model_name: x\n")
    assert serve.find_exports([str(tmp_path)]) == [str(tmp_path / d) for d in ("a_model", "b_model", "nested/c_model")]
    assert serve.find_exports([str(tmp_path / "b_model")]) == [str(tmp_path / "b_model")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="empty: no inference.yml"):
        serve.find_exports([str(tmp_path / "empty")])
    with pytest.raises(ConfigError, match="missing: no such folder"):
        serve.find_exports([str(tmp_path / "missing")])


def test_only_a_non_local_host_prints_the_warning():
    """127.0.0.1 (the default), localhost and ::1 stay silent; 0.0.0.0 gets one line that says why."""
    assert all(serve.exposure_warning(h, 7860) is None for h in ("127.0.0.1", "localhost", "::1"))
    line = serve.exposure_warning("0.0.0.0", 7860)
    assert line.startswith("warning: serving on 0.0.0.0:7860") and "\n" not in line
    assert serve.parse_args(["--model_dir", "x"]).host == "127.0.0.1"


def test_uploads_are_read_or_refused_in_one_sentence(tmp_path):
    """Images keep their encoding (RGB, 16-bit gray); not-an-image, a 5x7 picture and one over the
    pixel limit are refused before decoding, naming the upload; nothing uploaded is None."""
    rgb = photo(40, 60)
    assert (serve.read_upload({"path": save(tmp_path / "a.png", rgb)}, "photo", 10**6) == rgb).all()
    deep = (np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 20)
    got = serve.read_upload({"path": save(tmp_path / "d.png", deep)}, "mask", 10**6)
    assert got.dtype == np.uint16 and (got == deep).all()
    assert serve.read_upload(None, "mask", 10**6) is None
    (tmp_path / "t.png").write_text("not a picture")
    with pytest.raises(DataError, match="the uploaded photo is not an image file"):
        serve.read_upload({"path": str(tmp_path / "t.png")}, "photo", 10**6)
    with pytest.raises(DataError, match="the photo is 7x5 pixels; the page needs at least 16 a side"):
        serve.read_upload({"path": save(tmp_path / "s.png", photo(5, 7))}, "photo", 10**6)
    with pytest.raises(DataError, match=r"the photo is 60x40 \(0.0 MP\); this server takes at most"):
        serve.read_upload({"path": str(tmp_path / "a.png")}, "photo", 1000)


def test_painted_layers_become_the_hole():
    """Any pixel with alpha > 0 on any layer is hole (stroke edges included); an erased (empty)
    layer means no painted hole; the page combines it with an uploaded mask; neither is refused."""
    background = np.dstack([photo(30, 40), np.full((30, 40), 255, np.uint8)])
    layer = np.zeros((30, 40, 4), np.uint8)
    layer[5:9, 10:20, 3] = 1  # the faintest anti-aliased edge counts
    image, painted = serve.editor_inputs({"background": background, "layers": [layer, np.zeros_like(layer)]}, 10**6)
    assert image is background and painted.sum() == 40 and painted[5:9, 10:20].all()
    assert serve.editor_inputs({"background": background, "layers": [np.zeros_like(layer)]}, 10**6)[1] is None
    with pytest.raises(DataError, match="upload a photo first"):
        serve.editor_inputs({"background": None, "layers": []}, 10**6)
    uploaded = np.zeros((30, 40), np.uint8)
    uploaded[20:, :5] = 255
    both = serve.page_mask(painted, uploaded, (30, 40))
    assert both.sum() == 40 + 50 and both[20:, :5].all()
    with pytest.raises(DataError, match="the uploaded mask is 40x30 but its image is 50x30"):
        serve.page_mask(None, uploaded, (30, 50))
    with pytest.raises(DataError, match="paint the hole with the brush, or upload a mask"):
        serve.page_mask(None, None, (30, 40))


# ---- the server ----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A folder of three tiny seeded exports (no timing), as a user's inference/ folder."""
    import paddle

    from ppir.config import load_config
    from ppir.inference.export import export_model
    from ppir.models import build_model

    root = tmp_path_factory.mktemp("serve_exports")
    for label, (config, overrides) in EXPORTS.items():
        cfg = load_config(os.path.join(ROOT, "configs", "demo", config), overrides)
        paddle.seed(3)
        export_model(build_model(cfg), str(root / label), cfg=cfg, tune=False, log=lambda line: None)
    return root


@pytest.fixture(scope="module")
def server(request):
    """`python deploy/serve.py --model_dir <folder of exports>` on a free port; its URL."""
    pytest.importorskip("gradio", reason="the web page needs Gradio: pip install -e .[demo]")
    exports = request.getfixturevalue("exports")  # only once Gradio is known to be there
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "deploy", "serve.py"), "--model_dir", str(exports),
                             "--port", str(port), "--max_pixels", str(MAX_PIXELS)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.time() + 180
    while not any("Running on local URL" in line for line in lines):
        assert proc.poll() is None and time.time() < deadline, "server did not start:\n" + "".join(lines)
        time.sleep(0.2)
    yield {"url": f"http://127.0.0.1:{port}/", "lines": lines}
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def read_png(path_or_url):
    if path_or_url.startswith("http"):
        with urllib.request.urlopen(path_or_url, timeout=30) as r:
            from io import BytesIO

            return np.asarray(Image.open(BytesIO(r.read())).convert("RGB"))
    return np.asarray(Image.open(path_or_url).convert("RGB"))


def test_server_lists_its_models_and_endpoints(server, client):
    """The startup line names each export's label, network and task; the API has exactly the two
    named endpoints (the page's own events are private)."""
    assert any(line.startswith("models: ict (ICT, ict), mirnetv2 (MIRNetV2, restoration), misf (MISFGenerator, "
                               "inpainting)") for line in server["lines"]), server["lines"]
    assert not any(line.startswith("warning:") for line in server["lines"])
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/inpaint", "/restore"]


def test_inpaint_and_restore_endpoints(client, tmp_path):
    """/inpaint: MISF and ICT (two seeded samples, reproducible) return the photo's size, its
    pixels outside the hole, something else inside, and a caption with seconds and path;
    /restore returns the photo's size."""
    from gradio_client import handle_file

    img = photo(90, 130, seed=1)
    hole = np.zeros(img.shape[:2], bool)
    hole[20:50, 30:90] = True
    files = (handle_file(save(tmp_path / "p.png", img)),
             handle_file(save(tmp_path / "m.png", hole.astype(np.uint8) * 255)))
    runs = {}
    for label, n, seed in (("misf", None, None), ("ict", 2, 5), ("ict", 2, 5)):
        gallery, info = client.predict(*files, label, n, seed, api_name="/inpaint")
        assert info["model"] == label and info["seconds"] > 0 and info["inference_path"]
        assert len(gallery) == (n or 1)
        outs = [read_png(item["image"]) for item in gallery]
        for out, item in zip(outs, gallery):
            assert out.shape == img.shape
            assert (out[~hole] == img[~hole]).all()
            assert (out[hole] != img[hole]).any()
            assert f"{info['seconds']:.2f} s · {info['inference_path']}" in item["caption"]
        runs.setdefault(label, []).append(outs)
    first, again = runs["ict"]
    assert all((a == b).all() for a, b in zip(first, again)) and not (first[0] == first[1]).all()
    restored, info = client.predict(files[0], "mirnetv2", api_name="/restore")
    assert read_png(restored).shape == img.shape and info["network"] == "MIRNetV2"


def test_bad_requests_get_a_sentence_and_the_server_keeps_serving(client, tmp_path):
    """Not an image, a 5x7 picture, a mask of another size, one over --max_pixels, an unknown
    model: each call fails with its one-line message; the next good call still works."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    img, text = save(tmp_path / "p.png", photo()), tmp_path / "notes.png"
    text.write_text("not a picture")
    mask = np.zeros((120, 160), np.uint8)
    mask[40:60, 50:90] = 255
    cases = [
        ((str(text), save(tmp_path / "m.png", mask), "misf"), "the uploaded image is not an image file"),
        ((save(tmp_path / "s.png", photo(5, 7)), str(tmp_path / "m.png"), "misf"), "the image is 7x5 pixels"),
        ((img, save(tmp_path / "m2.png", mask[:60]), "misf"), "mask is 160x60 but its image is 160x120"),
        ((save(tmp_path / "big.png", photo(200, 200)), str(tmp_path / "m.png"), "misf"),
         "the image is 200x200 (0.0 MP); this server takes at most"),
        ((img, str(tmp_path / "m.png"), "mirnetv2"), "no inpainting model called 'mirnetv2'"),
    ]
    for (image, hole, label), message in cases:
        with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
            client.predict(handle_file(image), handle_file(hole), label, None, None, api_name="/inpaint")
    gallery, _ = client.predict(handle_file(img), handle_file(str(tmp_path / "m.png")), "misf", None, None,
                                api_name="/inpaint")
    assert read_png(gallery[0]["image"]).shape == (120, 160, 3)


def test_a_server_path_from_the_client_is_refused(server, tmp_path):
    """A request naming a file on the server (a valid photo and mask, but outside Gradio's upload
    folder) fails before the model runs: a client can only send uploads."""
    import json

    mask = np.zeros((120, 160), np.uint8)
    mask[40:60, 50:90] = 255
    files = [{"path": p, "meta": {"_type": "gradio.FileData"}}
             for p in (save(tmp_path / "p.png", photo()), save(tmp_path / "m.png", mask))]
    url = server["url"] + "gradio_api/call/inpaint"
    request = urllib.request.Request(url, data=json.dumps({"data": [*files, "misf", None, None]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{url}/{event}", timeout=120) as r:
        stream = r.read().decode()
    assert "event: error" in stream and "event: complete" not in stream, stream


# ---- the page, in a real browser -----------------------------------------------------------

@pytest.fixture
def browser():
    """Headless Chromium at 1280x800 (requested before the server, so a machine without it skips
    before any export is built)."""
    driver = chromium()
    yield driver
    driver.quit()


def chromium():
    pytest.importorskip("gradio", reason="the web page needs Gradio: pip install -e .[demo]")
    pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = browser
    # The image editor draws with WebGL (pixi.js): headless Chromium has no GPU, so ask for its
    # software renderer outright (the silent fallback to it is deprecated).
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def viewport(browser, width, height):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for(browser, what, check, timeout=180, fail=True):
    """check()'s first truthy value; on a timeout, a screenshot of the page and its text (or None
    when not `fail`)."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            if not fail:
                return None
            from selenium.webdriver.common.by import By

            browser.save_screenshot(os.path.join(SHOTS, "timeout.png"))
            console = "\n".join(e["message"][:200] for e in browser.get_log("browser")[-8:])
            pytest.fail(f"timed out waiting for {what} (output/test_serve/timeout.png); the page says: "
                        + browser.find_element(By.TAG_NAME, "body").text[-300:] + "\nconsole:\n" + console)
        time.sleep(0.25)


def test_page_paint_a_hole_and_fill_it_with_two_models(browser, server, tmp_path):
    """In headless Chromium: upload a photo into the editor, paint a stroke across its middle
    with mouse events (and one in a corner, undone), fill it with MISF and ICT; the gallery
    shows the input (hole tinted) and each result at the photo's size, equal to the photo
    outside the painted hole; a mask of another size gets its sentence in the page; the Restore
    tab shows before/after at the photo's size. Screenshots go to output/test_serve/."""
    import cv2
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from skimage import data

    os.makedirs(SHOTS, exist_ok=True)
    viewport(browser, 1280, 800)
    img = cv2.resize(data.chelsea(), (160, 120), interpolation=cv2.INTER_AREA)  # a cat: the docs' screenshot
    path = save(tmp_path / "photo.png", img)
    # Gradio 6.31's editor drops a file that arrives before its canvas is set up (console:
    # "reading 'reset_layers'") and stays broken: wait for the canvas, and reload to retry.
    for attempt in range(3):
        browser.get(server["url"])
        wait_for(browser, "the editor's canvas",
                 lambda: browser.find_elements(By.CSS_SELECTOR, "#ppir-editor canvas"))
        browser.find_element(By.CSS_SELECTOR, "#ppir-editor input[type=file]").send_keys(path)
        if wait_for(browser, "the photo in the editor", lambda: browser.find_elements(
                By.CSS_SELECTOR, "#ppir-editor button[aria-label='Brush Size']"), timeout=60, fail=attempt == 2):
            break
    canvas = browser.find_elements(By.CSS_SELECTOR, "#ppir-editor canvas")[-1]
    for control in ("Brush Size", "Erase"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#ppir-editor button[aria-label='{control}']"), control
    # First a stroke on the photo's top-left corner (shown at 240 %: 384x288 px around the
    # canvas centre), undone: the corner must stay known. Then the hole, across the middle.
    ActionChains(browser).move_to_element_with_offset(canvas, -185, -135).click_and_hold().move_by_offset(
        20, 10).release().perform()
    browser.find_element(By.CSS_SELECTOR, "#ppir-editor button[aria-label='Undo']").click()
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, -50, -10).click_and_hold()
    for _ in range(10):
        stroke = stroke.move_by_offset(10, 2)
    stroke.release().perform()
    browser.find_element(By.CSS_SELECTOR, "#ppir-inpaint").click()

    def gallery():
        found = browser.find_elements(By.CSS_SELECTOR, "#ppir-results img")
        return found if len(found) == 4 else None  # input, two ICT samples, MISF

    srcs = [e.get_attribute("src") for e in wait_for(browser, "the results", gallery)]
    captions = browser.find_element(By.CSS_SELECTOR, "#ppir-results").text
    runs = browser.find_element(By.CSS_SELECTOR, "#ppir-inpaint-runs").text
    browser.save_screenshot(os.path.join(SHOTS, "inpaint_1280x800.png"))
    shown = [read_png(src) for src in srcs]
    hole = (shown[0] != img).any(axis=2)  # the tinted input marks the hole the server got
    assert hole[60, 80] and 100 < hole.sum() < 0.5 * hole.size and not hole[:10, :10].any()
    for out in shown[1:]:
        assert out.shape == img.shape
        assert (out[~hole] == img[~hole]).all()
        assert (out[hole] != img[hole]).any()
    assert captions.count("ict sample") == 2 and captions.count("misf ·") == 1 and captions.count(" s · ") == 3
    assert "MISFGenerator" in runs and "ICT" in runs and runs.count("Paddle Inference") >= 2, runs

    viewport(browser, 390, 844)
    browser.execute_script("document.querySelector('#ppir-results').scrollIntoView()")
    browser.save_screenshot(os.path.join(SHOTS, "inpaint_390x844.png"))
    viewport(browser, 1280, 800)

    bad = np.zeros((60, 80), np.uint8)
    bad[10:30, 10:30] = 255
    browser.find_element(By.CSS_SELECTOR, "#ppir-mask input[type=file]").send_keys(save(tmp_path / "bad.png", bad))
    browser.find_element(By.CSS_SELECTOR, "#ppir-inpaint").click()
    wait_for(browser, "the error message", lambda: "the uploaded mask is 80x60 but its image is 160x120"
             in browser.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(os.path.join(SHOTS, "bad_mask_1280x800.png"))

    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Restore')]").click()
    upload = wait_for(browser, "the restore tab",
                      lambda: browser.find_elements(By.CSS_SELECTOR, "#ppir-photo input[type=file]"))
    upload[0].send_keys(str(tmp_path / "photo.png"))
    browser.find_element(By.CSS_SELECTOR, "#ppir-restore").click()
    pair = wait_for(browser, "before / after", lambda: [e.get_attribute("src") for e in browser.find_elements(
        By.CSS_SELECTOR, "#ppir-slider img")] if "MIRNetV2" in browser.find_element(
            By.CSS_SELECTOR, "#ppir-restore-runs").text else None)
    assert [read_png(src).shape for src in pair[:2]] == [img.shape, img.shape]
    browser.save_screenshot(os.path.join(SHOTS, "restore_1280x800.png"))
