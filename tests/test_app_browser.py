"""Real-browser test: `streamlit run app.py` in headless Chromium (Selenium), every page.

Screenshots go to ``$CELLBENCH_SCREENSHOTS`` (default ``screenshots/`` in the checkout, git-
ignored). Skips with a message when Chromium / chromedriver or Selenium are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: (url path, text the finished page shows with or without data)
PAGES = [
    ("", "Running jobs"),
    ("Catalog", "Samples"),
    ("Dataset_explorer", "Whole-slide images"),
    ("Evaluate", "Finished runs"),
    ("Results", "Results"),
    ("Cross-dataset", "Cross-dataset"),
    ("Figures", "Figures"),
    ("QuPath", "Read a QuPath project"),
    ("Predict", "Prediction jobs"),
]


class Server(str):
    """The app's URL, with its workspace and whether the research-flow runs are in it."""

    def __new__(cls, url: str, home: str, populated: bool):
        obj = super().__new__(cls, url)
        obj.home, obj.populated = home, populated
        return obj


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,2600",
        "--disable-gpu",
    ):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    yield drv
    drv.quit()


SQUARE = [[[1000, 1400], [1100, 1400], [1100, 1500], [1000, 1500], [1000, 1400]]]


def _populate(home: str, env: dict) -> bool:
    """A run for the research flows (OCELOT's stored predictions: points, classes, scores) and
    a GeoJSON for the slide viewer.
    False when the shared data is missing (those flows skip)."""
    import json

    data = Path(env.get("CELLBENCH_DATA", ""))
    if not (data / "ocelot").is_dir() or not (data / "wsi" / "small_HE.svs").is_file():
        return False
    subprocess.run(
        [sys.executable, "-m", "cellbench.cli.main", "evaluate", "--dataset", "ocelot"]
        + ["--predictions", "ocelot_fold0_model"],
        env=env,
        check=True,
        capture_output=True,
    )
    slides = Path(home) / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": SQUARE},
        "properties": {
            "objectType": "annotation",
            "classification": {"name": "Tumor", "color": [200, 0, 0]},
        },
    }
    (slides / "small_HE_tumour.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )
    # a model run whose predictions are not kept (as a bundled reference run's): its first
    # look in the app starts the one-time keep job
    got = subprocess.run(
        [sys.executable, "-m", "cellbench.cli.main", "evaluate", "--dataset", "dsb2018"]
        + ["--model", "unet2d_nuclei_broad_torchscript", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    run_id = json.loads(got.stdout)["run_id"]
    shutil.rmtree(Path(home) / "cache" / "predictions" / run_id)
    (Path(home) / "unkept_run").write_text(run_id)
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    home = os.environ.get("CELLBENCH_HOME") or str(tmp_path_factory.mktemp("home"))
    env = {**os.environ, "CELLBENCH_HOME": home}
    populated = _populate(home, env)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # a cold start on a loaded 2-core machine (fresh venv, byte-compiling) can take minutes
    t0 = time.monotonic()
    up = False
    while not up and proc.poll() is None and time.monotonic() - t0 < 240:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                up = True
        except OSError:
            time.sleep(0.3)
    if not up:
        proc.kill()
        out = proc.stdout.read().decode(errors="replace")[-3000:]
        pytest.fail(f"streamlit did not start within {time.monotonic() - t0:.0f} s:\n{out}")
    yield Server(f"http://127.0.0.1:{port}", home, populated)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_rendered(drv, expect: str, timeout=300):
    """Until the page shows ``expect`` and no spinner or running indicator is left.

    The limit is generous: the first visit of a fresh server lists every local dataset (the
    record cache starts empty in a test workspace), minutes on a loaded 2-core CI machine.
    Speed is measured by ``benchmarks/bench_app.py``, not here. On failure the page's
    screenshot is saved next to the others and its text is in the message.
    """
    from selenium.webdriver.common.by import By

    busy = "[data-testid='stSpinner'], [data-testid='stStatusWidget'] button"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        body = drv.find_element(By.TAG_NAME, "body").text
        if expect in body and not drv.find_elements(By.CSS_SELECTOR, busy):
            time.sleep(2.0)  # charts draw after the script ends
            return
        time.sleep(0.5)
    out = Path(os.environ.get("CELLBENCH_SCREENSHOTS", REPO / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(out / "timeout.png"))
    raise AssertionError(
        f"page did not finish in {timeout} s: expected '{expect}'; it shows:\n{body[-1500:]}"
    )


def test_every_page_renders_in_chromium(browser, server):
    out = Path(os.environ.get("CELLBENCH_SCREENSHOTS", REPO / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    for k, (page, expect) in enumerate(PAGES):
        browser.get(f"{server}/{page}")
        _wait_rendered(browser, expect)
        text = browser.find_element("tag name", "body").text
        name = page or "Home"
        browser.save_screenshot(str(out / f"{k}_{name}.png"))
        assert "Traceback" not in text, f"{name} shows a traceback"
        assert "Error" not in text.split("\n")[0]
        h1 = browser.find_elements("css selector", "h1")
        assert h1 and h1[0].text, f"{name} has no title"
        assert (out / f"{k}_{name}.png").stat().st_size > 10_000


def _body(drv) -> str:
    return drv.find_element("tag name", "body").text


def _until(drv, cond, what: str, timeout: float = 300):
    """``cond()``'s first true value, polled until ``timeout``."""
    from selenium.common.exceptions import StaleElementReferenceException

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            got = cond()
            if got:
                return got
        except StaleElementReferenceException:
            pass  # the page re-rendered under us: look again
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; page shows:\n{_body(drv)[-1500:]}")


def _no_script_ran(drv) -> None:
    assert drv.execute_script("return window.__xss === undefined"), "hostile markup ran"
    assert not drv.find_elements("css selector", "img[src='x']"), "hostile <img> in the DOM"


def test_hostile_geojson_uploaded_through_the_app_renders_as_text(browser, server, tmp_path):
    """Issue 15: a QuPath GeoJSON whose class name is an <img onerror> payload, uploaded and
    imported through the QuPath page's form, is shown as text on every page."""
    import numpy as np
    import tifffile
    from hostile import XSS, geojson, square
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    gj = geojson(tmp_path / "hostile.geojson", [square(5, 5, 10, XSS), square(30, 30, 9, "Tumor")])
    img = tmp_path / "hostile.tif"
    tifffile.imwrite(img, np.full((64, 64, 3), 200, np.uint8))
    browser.get(f"{server}/QuPath")
    _wait_rendered(browser, "Read a QuPath project")
    browser.find_elements(By.CSS_SELECTOR, "input[type=file]")[0].send_keys(str(gj))
    _until(browser, lambda: "Add it to a user dataset" in _body(browser), "the import form")
    _no_script_ran(browser)
    browser.find_elements(By.CSS_SELECTOR, "input[type=file]")[1].send_keys(str(img))
    _until(browser, lambda: "hostile.tif" in _body(browser), "the image upload")
    box = browser.find_element(By.CSS_SELECTOR, "input[aria-label='Dataset id']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("hostile_upload", Keys.TAB)
    time.sleep(1.0)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Import").click()
    _until(browser, lambda: "to 'hostile_upload'" in _body(browser), "the import to finish")
    _no_script_ran(browser)
    for page, expect in PAGES:
        browser.get(f"{server}/{page}")
        _wait_rendered(browser, expect)
        _no_script_ran(browser)
        assert "Traceback" not in _body(browser)
    # the explorer's class legend shows the name literally
    browser.get(f"{server}/Dataset_explorer")
    _wait_rendered(browser, "Whole-slide images")
    sel = browser.find_elements(By.CSS_SELECTOR, "div[data-testid='stSelectbox'] input")[0]
    sel.click()
    sel.send_keys("hostile_upload", Keys.ENTER)
    _until(browser, lambda: "Gallery: hostile_upload" in _body(browser), "the hostile dataset")
    _wait_rendered(browser, "Classes:")
    assert XSS in _body(browser)  # rendered as the text it is
    _no_script_ran(browser)
    out = Path(os.environ.get("CELLBENCH_SCREENSHOTS", REPO / "screenshots"))
    browser.save_screenshot(str(out / "hostile_class_legend.png"))


#: A deep link's Markdown and HTML: an external image the browser would fetch, a link, bold
#: text and a script (issue 32 item 4).
LINK_PAYLOAD = (
    "![x](http://example.invalid/x.png) [click](http://example.invalid/) **B** "
    "<img src=x onerror='window.__xss=1'>"
)


def test_deep_link_markup_renders_as_text_on_every_page(browser, server):
    """Every page, opened with hostile query parameters (``sample`` with a real ``run``
    reaches the Results page's sample heading), shows them as text: no external image or
    link, no bold, no script."""
    import json
    from urllib.parse import urlencode

    runs = sorted(Path(server.home, "store", "runs").glob("*.json"))
    run = json.loads(runs[0].read_text())["run_id"] if runs else "none"
    query = urlencode(
        {"run": run, "sample": LINK_PAYLOAD, "dataset": LINK_PAYLOAD, "model": LINK_PAYLOAD}
    )
    for page, expect in PAGES:
        browser.get(f"{server}/{page}?{query}")
        _wait_rendered(browser, expect)
        _no_script_ran(browser)
        where = page or "Home"
        assert not browser.find_elements("css selector", "img[src*='example.invalid']"), where
        # (the app's own links to this sample carry the text in their query: not a target)
        assert not browser.find_elements("css selector", "a[href^='http://example']"), where
        bold = [e.text for e in browser.find_elements("css selector", "strong, b")]
        assert "B" not in bold, where
        assert "Traceback" not in _body(browser), where
    if runs and server.populated:  # the heading that rendered it before
        browser.get(f"{server}/Results?{query}")
        _until(browser, lambda: "example.invalid" in _body(browser), "the sample heading")
        assert "**B**" in _body(browser)
        _no_script_ran(browser)


def test_a_path_outside_the_data_root_and_workspace_is_refused_alike(browser, server):
    """The QuPath page's project folder: a system folder and a folder that does not exist get
    the same refusal, so the app tells nothing about the server's file system."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    said = []
    for path in ("/etc", "/no/such/folder/anywhere"):
        browser.get(f"{server}/QuPath")
        _wait_rendered(browser, "Read a QuPath project")
        box = browser.find_element(
            By.CSS_SELECTOR, "input[aria-label='Project folder (on this machine)']"
        )
        box.send_keys(path, Keys.ENTER)
        _until(browser, lambda: "the folders this app may read" in _body(browser), "refusal")
        text = _body(browser)
        said.append(next(x for x in text.split("\n") if "the folders this app may read" in x))
        assert "not found" not in text and "qpproj" not in text.split("Read a QuPath")[-1]
    assert said[0] == said[1]


# -- the research flows, as a user clicks through them -------------------------------------


def _shot(drv, name: str) -> Path:
    out = Path(os.environ.get("CELLBENCH_SCREENSHOTS", REPO / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(out / f"{name}.png"))
    return out / f"{name}.png"


def _no_error_box(drv, where: str) -> None:
    boxes = drv.find_elements("css selector", "[data-testid='stAlertContentError']")
    assert not boxes, f"{where}: error box: {[b.text for b in boxes]}"
    assert "Traceback" not in _body(drv), where


def _button(drv, text: str, timeout: float = 120):
    """The first button labelled ``text`` (waits for it; the page re-renders meanwhile)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            hits = [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip() == text]
            if hits:
                return hits[0]
        except StaleElementReferenceException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no button '{text}'; page shows:\n{_body(drv)[-1500:]}")


#: The scrolling sample grid's tiles whose image has arrived (drawn by the tile server).
GRID_LOADED = (
    "return Array.from(document.querySelectorAll('.cbg-tile img'))"
    ".filter(i => i.complete && i.naturalWidth > 0).length"
)


def _grid_captions(drv) -> list[str]:
    """The captions of the scrolling sample grid's tiles laid out so far."""
    return drv.execute_script(
        "return Array.from(document.querySelectorAll('.cbg-tile figcaption'))"
        ".map(c => Array.from(c.children).map(s => s.textContent).join(' · '))"
    )


def _click(drv, text: str) -> None:
    """Click the button labelled ``text``, again if the page replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):
        try:
            _button(drv, text).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.5)
    raise AssertionError(f"could not click '{text}'")


def _choose(drv, index: int, text: str) -> None:
    """Type ``text`` into the ``index``-th selectbox and pick the match."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = drv.find_elements(By.CSS_SELECTOR, "div[data-testid='stSelectbox'] input")[index]
    box.click()
    box.send_keys(text)
    time.sleep(0.5)
    box.send_keys(Keys.ENTER)


def test_research_flows_in_chromium(browser, server, tmp_path):
    """Issue 18's flows: the OCELOT explorer (points only), the sample grid sorted and opened
    to its error view, the confusion matrix and threshold curves, an 89 mm SVG export, a slide
    with objects overlaid and moved; no error box anywhere; screenshots saved."""
    if not server.populated:
        pytest.skip("needs ../shared/data (OCELOT, DSB 2018, WSI fixtures)")
    from selenium.webdriver.common.by import By

    drv = browser
    drv.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    # Explorer on OCELOT: 80 of 81 samples are points without pixels
    drv.get(f"{server}/Dataset_explorer?dataset=ocelot")
    _wait_rendered(drv, "Gallery: ocelot")
    assert "no local pixels" in _body(drv)
    _no_error_box(drv, "explorer on OCELOT")
    _shot(drv, "flow_1_explorer_ocelot")

    # Results: the OCELOT test set, its sample grid sorted by F1, one sample opened
    drv.get(f"{server}/Results")
    _wait_rendered(drv, "Test set")
    _choose(drv, 0, "ocelot")
    _wait_rendered(drv, "Mean f1 per run")
    _click(drv, "Sample grid")
    _wait_rendered(drv, "samples, sorted by")
    assert "samples, sorted by f1" in _body(drv)
    _until(drv, lambda: drv.execute_script(GRID_LOADED) >= 8, "the grid's thumbnails")
    first = _grid_captions(drv)[0]
    assert len(_grid_captions(drv)) == 81  # one scroll: every sample's tile laid out
    # sorted the other way round: the first thumbnail changes
    toggle = next(
        t
        for t in drv.find_elements(By.CSS_SELECTOR, "[data-testid='stCheckbox'] label")
        if "Descending" in t.text
    )
    toggle.click()
    _until(drv, lambda: _grid_captions(drv)[0] != first, "the grid sorted descending")
    _until(drv, lambda: drv.execute_script(GRID_LOADED) >= 8, "the sorted grid's thumbnails")
    # scrolled to the end, the last tiles' images are drawn on request
    drv.execute_script("document.querySelector('.cbg-root').scrollTop = 1e6")
    _until(
        drv,
        lambda: drv.execute_script(
            "const t = document.querySelectorAll('.cbg-tile img');"
            "const i = t[t.length - 1]; return i.complete && i.naturalWidth > 0"
        ),
        "the last tile's image after scrolling",
    )
    drv.execute_script("document.querySelector('.cbg-root').scrollTop = 0")
    _shot(drv, "flow_2_sample_grid")
    opened = _grid_captions(drv)[0].split(" · ")[0]
    drv.find_elements(By.CSS_SELECTOR, ".cbg-tile")[0].click()  # a click on a tile opens it
    _wait_rendered(drv, "QuPath GeoJSON (TP / FP / FN)")
    body = _body(drv)
    assert "TP" in body and "FP" in body and "Open in the Dataset explorer" in body
    assert opened in body, opened
    _no_error_box(drv, "error view")
    _shot(drv, "flow_3_error_view")

    # classification panel: confusion matrix, per-class table, threshold curves
    _click(drv, "Classification")
    _wait_rendered(drv, "Confusion of matched objects")
    _wait_rendered(drv, "Detection against the score threshold")
    _no_error_box(drv, "classification panel")
    _shot(drv, "flow_4_confusion")

    # an 89 mm SVG of the confusion matrix
    next(e for e in drv.find_elements(By.CSS_SELECTOR, "summary") if "Export" in e.text).click()
    _until(drv, lambda: "Download SVG" in _body(drv), "the export box")
    _click(drv, "Download SVG")
    _until(drv, lambda: list(tmp_path.glob("*.svg")), "the SVG download", timeout=120)
    from cellbench.viz.figures import MIN_PLOT_PX, plot_area

    svg = next(tmp_path.glob("*.svg")).read_text()
    assert 'width="336"' in svg  # 89 mm at 96 px per inch
    assert min(plot_area(svg)) >= MIN_PLOT_PX

    # a click on a confusion cell (true BC, predicted TC) lists its samples in the grid
    from selenium.webdriver.common.action_chains import ActionChains

    chart = drv.find_elements(By.CSS_SELECTOR, "[data-testid='stPlotlyChart']")[0]
    drv.execute_script("arguments[0].scrollIntoView()", chart)
    cells = chart.find_elements(By.CSS_SELECTOR, "g.trace.scatter path.point")
    ActionChains(drv).move_to_element(cells[1]).pause(0.3).click().perform()
    _until(drv, lambda: "samples with true BC objects paired with TC" in _body(drv), "the cell")
    _wait_rendered(drv, "samples, sorted by")
    _no_error_box(drv, "grid of a confusion cell")

    # a real slide first in the deep-zoom viewer, the workspace's GeoJSON overlaid: wheel
    # zoom, a drag, a click on the object for its class and measurements
    drv.get(f"{server}/Dataset_explorer")
    _wait_rendered(drv, "Wheel to zoom")
    assert "2220 x 2967 level-0 px" in _body(drv)  # small_HE.svs, the tissue slide, first
    _deep_zoom_checks(drv, (1050, 1450), "Tumor")
    _no_error_box(drv, "slide viewer")
    _shot(drv, "flow_5_slide_viewer")

    # the evaluation's job label and the run link on Evaluate
    drv.get(f"{server}/Evaluate")
    _wait_rendered(drv, "Finished runs")
    _no_error_box(drv, "evaluate")


def _deep_zoom_checks(drv, inside: tuple[float, float], cls: str) -> None:
    """In the page's deep-zoom viewer: the image loads, a real mouse wheel zooms in, a drag
    pans, the object at ``inside`` (image pixels) is drawn and a click on it shows ``cls``."""
    from selenium.webdriver.common.by import By

    frame = _until(drv, lambda: drv.find_elements(By.CSS_SELECTOR, "iframe"), "the viewer")[0]
    drv.execute_script("arguments[0].scrollIntoView()", frame)
    fx, fy = drv.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top]", frame
    )
    drv.switch_to.frame(frame)
    try:
        _until(
            drv,
            lambda: drv.execute_script(
                "return !!(window.cb && cb.state.loaded && cb.viewer.world.getItemCount()"
                " && cb.viewer.world.getItemAt(0).getFullyLoaded())"
            ),
            "the slide's tiles and objects",
        )
        js_pos = (
            "const p = cb.viewer.viewport.imageToViewerElementCoordinates("
            "new OpenSeadragon.Point(arguments[0], arguments[1])); return [p.x, p.y]"
        )

        def mouse(kind, x, y, **kw):  # a real input event, in the page's coordinates
            args = {"type": kind, "x": fx + x, "y": fy + y, **kw}
            drv.execute_cdp_cmd("Input.dispatchMouseEvent", args)

        z0 = drv.execute_script("return cb.viewer.viewport.getZoom(true)")
        x, y = drv.execute_script(js_pos, *inside)
        for _ in range(4):
            mouse("mouseMoved", x, y)
            mouse("mouseWheel", x, y, deltaX=0, deltaY=-240)
            time.sleep(0.3)
        _until(
            drv,
            lambda: drv.execute_script("return cb.viewer.viewport.getZoom(true)") > 1.5 * z0,
            "the wheel zoom",
            timeout=30,
        )
        c0 = drv.execute_script("return cb.viewer.viewport.getCenter(true).x")
        x, y = drv.execute_script(js_pos, *inside)
        mouse("mousePressed", x, y, button="left", clickCount=1)
        for k in range(1, 6):
            mouse("mouseMoved", x - 30 * k, y, button="left")
            time.sleep(0.05)
        mouse("mouseReleased", x - 150, y, button="left", clickCount=1)
        _until(
            drv,
            lambda: drv.execute_script("return cb.viewer.viewport.getCenter(true).x") > c0,
            "the drag",
            timeout=30,
        )
        time.sleep(0.6)
        assert drv.execute_script("return cb.state.drawn") >= 1
        x, y = drv.execute_script(js_pos, *inside)
        mouse("mousePressed", x, y, button="left", clickCount=1)
        mouse("mouseReleased", x, y, button="left", clickCount=1)
        _until(
            drv,
            lambda: cls in drv.find_element(By.ID, "info").text,
            "the object's class",
            timeout=30,
        )
        assert "area" in drv.find_element(By.ID, "info").text
    finally:
        drv.switch_to.default_content()


def test_a_run_without_kept_predictions_gets_them_from_a_background_job(browser, server):
    """Issue 32: the grid of a model run without kept predictions shows the ground truth and
    the keep job's progress at once, then the run's errors once the job has kept them."""
    if not server.populated:
        pytest.skip("needs ../shared/data (DSB 2018 and its model)")

    drv = browser
    run_id = (Path(server.home) / "unkept_run").read_text()
    drv.get(f"{server}/Results?view=grid&run={run_id}")
    _wait_rendered(drv, "samples, sorted by")

    _until(drv, lambda: len(_grid_captions(drv)) == 2, "the grid's two tiles")
    _until(
        drv,
        lambda: all("ground truth" not in c for c in _grid_captions(drv)),
        "the errors drawn from the kept predictions",
        timeout=300,
    )
    _until(drv, lambda: drv.execute_script(GRID_LOADED) == 2, "both error thumbnails")
    _no_error_box(drv, "grid after the keep job")
    _shot(drv, "flow_7_grid_after_keep_job")
    kept = Path(server.home) / "cache" / "predictions" / run_id
    assert len(list(kept.glob("*.npz"))) == 2 and list((kept / "thumbs").glob("*.png"))
