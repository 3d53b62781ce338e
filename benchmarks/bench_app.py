"""The app's speed targets (issue 18), measured in headless Chromium against ``streamlit run``.

Run by hand: ``python benchmarks/bench_app.py [--cpus 2] [--rows 1000000]``. Needs Debian's
``chromium`` and ``chromium-driver`` and ``CELLBENCH_DATA`` pointing at the shared data.

What it does, in one run:

1. a fresh workspace (``CELLBENCH_HOME`` in a temporary folder) with the committed reference
   results (read from the repository) plus ``--rows`` synthetic metric rows in the user store;
2. lists every local dataset once (the per-dataset record cache that later starts reuse), timed;
3. starts Chromium, then ``streamlit run app.py`` pinned to ``--cpus`` cores, and measures the
   cold start: from launching the server to a Home page that shows its last section with no
   running indicator;
4. measures control changes as a user makes them (pick an option, wait until the page shows
   the new content and Streamlit's running indicator is gone) on Catalog, Results and
   Cross-dataset;
5. opens the sample grid of a model run evaluated with this version (its predictions kept) on
   Results, clicks a tile of the scrolling grid and waits for the error view; then a bundled
   reference run without kept predictions (cb_monusac on the 46 MoNuSAC test samples): the one-time
   keep job its first look starts, then its grid of error thumbnails and an error view read
   back (target <= 1 s each);
0. before all that (``--first-start``, default on), a fresh workspace's first start with
   nothing listed: launch to a usable Home (target <= 5 s), and until the background listing
   is done.

Each target is printed with its measured figure and the ratio measured / target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUSY = "[data-testid='stStatusWidget'] button, [data-testid='stSpinner']"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    opts.add_argument("--window-size=1400,2400")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


#: One probe, run in the page: the text is there, Streamlit's running indicator or a spinner is
#: shown, an element is still marked stale (the rerun has not replaced it yet). WebDriver's own
#: ``.text`` costs ~0.5 s on a long page, too coarse for these targets; this costs ~40 ms.
PROBE = (
    "return [document.body.innerText.includes(arguments[0]),"
    " !!document.querySelector(arguments[1]),"
    " !!document.querySelector('[data-stale=true]')]"
)


def _settled(drv, expect: str, timeout: float = 300.0, quiet: float = 0.25) -> float:
    """Seconds until ``expect`` is on the page, nothing runs and nothing is stale, held for
    ``quiet`` s (the returned figure does not include ``quiet``)."""
    t0 = time.perf_counter()
    ok_since = None
    while time.perf_counter() - t0 < timeout:
        try:
            has, busy, stale = drv.execute_script(PROBE, expect, BUSY)
        except Exception:  # noqa: BLE001 - page still loading
            has, busy, stale = False, True, True
        if has and not busy and not stale:
            ok_since = ok_since or time.perf_counter()
            if time.perf_counter() - ok_since >= quiet:
                return ok_since - t0
        else:
            ok_since = None
        time.sleep(0.02)
    raise TimeoutError(f"page never showed {expect!r}")


def _widget_input(drv, label: str, timeout: float = 30.0):
    """The input of the selectbox labelled ``label`` (waits for it to be rendered)."""
    from selenium.webdriver.common.by import By

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        for w in drv.find_elements(By.CSS_SELECTOR, "[data-testid='stSelectbox']"):
            lab = w.find_elements(By.CSS_SELECTOR, "[data-testid='stWidgetLabel']")
            if lab and lab[0].get_attribute("textContent").strip() == label:
                return w.find_element(By.TAG_NAME, "input")
        time.sleep(0.1)
    raise LookupError(f"no selectbox '{label}'")


def _select(drv, label: str, option: str, expect: str) -> float:
    """Pick ``option`` in selectbox ``label``; seconds until the page shows ``expect`` (text
    that only the re-rendered page has) and is settled."""
    from selenium.webdriver.common.keys import Keys

    box = _widget_input(drv, label)
    box.click()
    box.send_keys(option)
    t0 = time.perf_counter()
    box.send_keys(Keys.ENTER)
    time.sleep(0.05)
    return time.perf_counter() - t0 + _settled(drv, expect)


def _click(drv, text: str) -> float:
    """Click the first button labelled ``text``; seconds the click itself took."""
    from selenium.webdriver.common.by import By

    for _ in range(100):
        hits = [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip() == text]
        if hits:
            t0 = time.perf_counter()
            hits[0].click()
            time.sleep(0.05)
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise LookupError(f"no button '{text}'")


def _grid_images(drv, n: int, timeout: float = 120) -> None:
    """Wait until the scrolling grid's first ``n`` tiles show their run's errors (images
    arrived, no tile left on the ground truth)."""
    script = (
        "const t = Array.from(document.querySelectorAll('.cbg-tile')).slice(0, arguments[0]);"
        "return t.length === arguments[0] && t.every(f => !f.classList.contains('cbg-t') && "
        "f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0)"
    )
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout and not drv.execute_script(script, n):
        time.sleep(0.05)


def _click_tile(drv) -> float:
    """Click the grid's first tile; seconds the click itself took."""
    from selenium.webdriver.common.by import By

    t0 = time.perf_counter()
    drv.find_elements(By.CSS_SELECTOR, ".cbg-tile")[0].click()
    time.sleep(0.05)
    return time.perf_counter() - t0


def _note(name: str, value: float) -> None:
    """A figure printed without a target."""
    print(f"{'(' + name + ')':<52} {value:6.2f} s")


def _report(name: str, value: float, target: float) -> None:
    print(f"{name:<52} {value:6.2f} s   target <= {target:.1f} s   ratio {value / target:4.2f}")


def _wait_keep_job(home: Path, run_id: str, timeout: float = 900) -> dict:
    """The keep job of ``run_id`` once it has finished (its progress file)."""
    import json

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        for d in sorted((home / "jobs").glob("*/job.json")):
            job = json.loads(d.read_text())
            if job.get("kind") == "keep" and job.get("spec", {}).get("run_id") == run_id:
                prog = json.loads((d.parent / "progress.json").read_text())
                if prog.get("status") in ("complete", "failed", "cancelled"):
                    return {**job, **prog}
        time.sleep(0.2)
    raise SystemExit(f"the keep job of {run_id} did not finish in {timeout:.0f} s")


def _start_server(env: dict, cpus: int) -> tuple[subprocess.Popen, str, float]:
    """``streamlit run app.py`` pinned to ``cpus`` cores, once its port answers: the process,
    its URL and the launch time (``time.perf_counter``)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py")]
    cmd += ["--server.headless", "true", "--server.port", str(port)]
    cmd += ["--browser.gatherUsageStats", "false"]
    if cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(str(i) for i in range(cpus)), *cmd]
    t0 = time.perf_counter()
    server = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}", t0


def first_start(drv, cpus: int) -> None:
    """A fresh workspace's first start, nothing listed: launch to a usable Home (its last
    section shown; the listing runs in the background), then until the listing is done."""
    env = {**os.environ, "CELLBENCH_HOME": tempfile.mkdtemp(prefix="cellbench_first_")}
    server, url, t0 = _start_server(env, cpus)
    try:
        drv.get(url)
        while "Running jobs" not in drv.execute_script("return document.body.innerText"):
            time.sleep(0.05)
        _report("first start (nothing listed) to a usable Home", time.perf_counter() - t0, 5.0)
        while "listing ..." in drv.execute_script("return document.body.innerText") or (
            "Listing the local data" in drv.execute_script("return document.body.innerText")
        ):
            time.sleep(0.25)
        _note("first start: the background listing done", time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(env["CELLBENCH_HOME"], ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpus", type=int, default=2, help="cores the server may use (taskset)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic metric rows")
    ap.add_argument(
        "--first-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure a fresh workspace's first start (nothing listed yet)",
    )
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cellbench_app_bench_"))
    os.environ["CELLBENCH_HOME"] = str(home)
    from cellbench.core import config
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import sample_table
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    metrics = ("pq", "dq", "sq", "aji", "aji_plus", "dice1", "dice2", "f1", "precision", "recall")
    classes = ("epithelial", "inflammatory", "connective", "other")
    n_samples = max(1, args.rows // (20 * len(metrics) * (len(classes) + 1)))
    store = Store()
    synthetic_store(
        store,
        train_sets=("a", "b", "c", "d", "a+b"),
        test_sets=("a", "b", "c", "d"),
        n_samples=n_samples,
        metrics=metrics,
        classes=classes,
    )
    rows = store.scan().select("value").collect().height
    print(f"workspace {home}: {rows:,} metric rows in {len(store.run_ids())} runs")

    drv = _browser()
    if args.first_start:  # a new user's first start: nothing listed yet
        first_start(drv, args.cpus)
    t0 = time.perf_counter()
    cat = load_catalog(config.catalog_path(), config.data_root())
    tab = sample_table(cat)
    # a model run evaluated with this version keeps its predictions (for the error view)
    from cellbench.runs.evaluate import EvalSpec, evaluate

    kept = evaluate(
        EvalSpec(dataset="monuseg", split="test", model="cb_monuseg", preset="stardist")
    )
    print(
        f"first listing of the local data (cached for later starts): "
        f"{time.perf_counter() - t0:.1f} s, {tab.height} samples"
    )

    server, url, t0 = _start_server(dict(os.environ), args.cpus)
    try:
        drv.get(url)
        t1 = time.perf_counter()  # _settled's figure leaves out its quiet period
        _report("cold start to a usable Home", t1 - t0 + _settled(drv, "Running jobs"), 3.0)

        def page(path: str, expect: str) -> float:
            t = time.perf_counter()
            drv.get(f"{url}/{path}")
            t1 = time.perf_counter()
            return t1 - t + _settled(drv, expect)

        first = page("Catalog", f"of {tab.height} samples")
        _note("first visit of Catalog, this session", first)
        n_all, n_here = len(list(cat)), sum(cat.is_available(d) for d in cat)
        t = _select(drv, "Availability", "available here", f"{n_here} of {n_all} datasets")
        _report("Catalog: availability filter", t, 1)
        t = _select(drv, "Availability", "all", f"{n_all} of {n_all} datasets")
        _report("Catalog: availability back to all", t, 1)

        first = page("Results", "Mean pq per run")
        _note("first visit of Results, this session", first)
        # the default grouping is the first key with several groups: center, made explicit
        t = _select(drv, "Group by", "center", "Mean pq per run and center")
        _report("Results: group by -> center", t, 1)
        t = _select(drv, "Metric", "aji", "Mean aji per run and center")
        _report("Results: metric -> aji", t, 1)
        t = _select(drv, "Group by", "organ", "Mean aji per run and organ")
        _report("Results: group by -> organ", t, 1)
        t = _select(drv, "Metric", "pq", "Mean pq per run and organ")
        _report("Results: metric -> pq", t, 1)

        # a sample click to its error view: the grid of a run, then Open on one thumbnail
        drv.get(f"{url}/Results?run={kept['run_id']}")
        _settled(drv, "Mean pq per run")
        _click(drv, "Sample grid")
        _settled(drv, "samples, sorted by")
        t_grid = time.perf_counter()
        _grid_images(drv, 12)
        _note("sample grid: 12 thumbnails drawn", time.perf_counter() - t_grid)
        _settled(drv, "samples, sorted by", quiet=1.0)
        t = _click_tile(drv) + _settled(drv, "QuPath GeoJSON (TP / FP / FN)")
        _report("Results: sample click -> its error view", t, 2)
        # a bundled run without kept predictions: its first look starts the one-time keep
        # job (46 MoNuSAC test samples), then its grid and error view are read back
        ref = next(r for r in Store().run_ids() if r.startswith("cb_monusac_monusac_test"))
        drv.get(f"{url}/Results?view=grid&run={ref}")
        t0 = time.perf_counter()
        _settled(drv, "samples, sorted by")
        job = _wait_keep_job(home, ref)
        _note(f"one-time keep job, {job.get('total')} MoNuSAC samples", time.perf_counter() - t0)
        drv.get(f"{url}/Results?run={ref}&view=grid")
        _settled(drv, "samples, sorted by")
        t_grid = time.perf_counter()
        _grid_images(drv, 12)
        _report(
            "grid of a run with kept predictions: 12 error thumbnails",
            time.perf_counter() - t_grid,
            1,
        )
        _settled(drv, "samples, sorted by", quiet=1.0)
        t = _click_tile(drv) + _settled(drv, "QuPath GeoJSON (TP / FP / FN)")
        _report("its error view (kept predictions)", t, 1)

        first = page("Cross-dataset", "Top-k fusion")
        _note("first visit of Cross-dataset, this session", first)
        t = _select(drv, "Metric", "aji", "mean aji (")
        _report("Cross-dataset: metric -> aji", t, 1)
        t = _select(drv, "Metric", "dice1", "mean dice1 (")
        _report("Cross-dataset: metric -> dice1", t, 1)
    finally:
        drv.quit()
        server.terminate()
        server.wait(10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
