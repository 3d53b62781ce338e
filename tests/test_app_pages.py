"""Every page driven with Streamlit's AppTest: widgets set, what the page shows asserted."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
PAGES = REPO / "pages"


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=120)


def _text(at: AppTest) -> str:
    parts = [
        e.value
        for e in (
            *at.markdown,
            *at.caption,
            *at.info,
            *at.warning,
            *at.success,
            *at.error,
            *at.subheader,
        )
    ]
    return "\n".join(str(p) for p in parts)


def _grid_items(at: AppTest) -> list[list]:
    """The scrolling sample grid's tiles: ``[k, sample id, caption, state]`` each."""
    grids = [e for e in at.get("bidi_component") if e.proto.component_name.endswith("scrollgrid")]
    assert len(grids) == 1, len(grids)
    return json.loads(grids[0].proto.json)["items"]


def _grid_thumb(at: AppTest, k: int = 0):
    """Thumbnail ``k`` of the grid as the browser gets it from the tile server (RGB array)."""
    import io
    import urllib.request

    import numpy as np
    from PIL import Image

    grid = next(e for e in at.get("bidi_component") if e.proto.component_name.endswith("grid"))
    data = json.loads(grid.proto.json)
    item = data["items"][k]
    with urllib.request.urlopen(f"{data['base']}{item[0]}_{item[3]}.jpg", timeout=60) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        return np.asarray(Image.open(io.BytesIO(r.read())))


def _grid_captions(at: AppTest) -> list[str]:
    """Each tile's sample id and caption, as the tile shows them (two lines)."""
    return [f"{item[1]} · {item[2]}" for item in _grid_items(at)]


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _no_errors(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(REPO / "data_catalog.yaml"))


@pytest.fixture
def synthetic_runs():
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    return synthetic_store(Store(), classes=("epithelial", "inflammatory"))


def test_home_without_data(no_data):
    at = _page("0_Home.py").run()
    _no_errors(at)
    values = [m.value for m in at.metric]
    assert values[:2] == ["20", "0"]
    tables = [m.value for m in at.markdown if m.value.startswith("| ")]
    datasets, models = tables[0], tables[1]
    assert datasets.count("\n") == 20 + 1 and "| monuseg |" in datasets
    assert "cb&#95;monuseg" in models  # as_text: every character but letters, digits, spaces
    assert "unet2d" not in models  # it lives in the data
    assert "No evaluation runs yet" in _text(at)


def test_catalog_facets_without_data(no_data):
    at = _page("1_Catalog.py").run()
    _no_errors(at)
    at.multiselect(key="facet_stain").set_value(["PAP"]).run()
    shown = at.dataframe[0].value
    assert set(shown["id"]) == {"oscc", "apacs23", "isbi2014_edf", "isbi2014_synthetic"}
    assert shown["obtain"].str.len().min() > 10  # unavailable datasets say how to get them
    assert "No dataset is available locally" in _text(at)


def test_catalog_sample_filters(data_env):
    at = _page("1_Catalog.py").run()
    _no_errors(at)
    at.multiselect(key="facet_dataset").set_value(["monuseg"]).run()
    at.multiselect(key="facet_split").set_value(["test"]).run()
    assert "14 of 974 samples" in _text(at)
    assert set(at.dataframe[0].value["id"]) == {"monuseg"}  # one set of filters for both
    at.multiselect(key="facet_dataset").set_value([])
    at.multiselect(key="facet_split").set_value([]).run()
    # one organ vocabulary: OCELOT's "head-and-neck" is PanNuke's "head and neck"
    opts = at.multiselect(key="facet_organ").options
    assert "head and neck" in opts and "head-and-neck" not in opts
    assert "pancreas" in opts and "pancreatic" not in opts
    at.multiselect(key="facet_organ").set_value(["head and neck"]).run()
    assert set(at.dataframe[0].value["id"]) == {"ocelot", "pannuke"}
    samples = at.dataframe[1].value
    assert set(samples["dataset"]) == {"ocelot"} and len(samples) > 0
    # one distribution at a time, of the filtered samples: centers first, then the one asked
    assert [c["layout"]["title"]["text"] for c in _charts(at)] == ["Samples per center"]
    at.segmented_control(key="dist").set_value("Nuclei per sample").run()
    (chart,) = _charts(at)
    assert chart["layout"]["title"]["text"].startswith("Nuclei per sample")
    assert len(chart["data"][0]["x"]) == len(samples)
    at.multiselect(key="facet_organ").set_value([])
    at.multiselect(key="facet_dataset").set_value(["monuseg"])
    at.multiselect(key="facet_split").set_value(["test"]).run()
    (chart,) = _charts(at)
    assert chart["layout"]["title"]["text"].startswith("Nuclei per sample")
    assert len(chart["data"][0]["x"]) == 14  # the 14 MoNuSeg test samples
    at.multiselect(key="facet_dataset").set_value([])
    at.multiselect(key="facet_split").set_value([])
    at.selectbox(key="facet_avail").set_value("available here").run()
    assert set(at.dataframe[0].value["id"]) == {
        "consep",
        "monuseg",
        "ocelot",
        "dsb2018",
        "cryonuseg",
        "gbm",
        "monusac",
        "isbi2014_edf",
        "isbi2014_synthetic",
    }


def test_explorer_gallery_one_sample_and_broken_slide(data_env, monkeypatch, tmp_path):
    home = tmp_path / "home"
    (home / "slides").mkdir(parents=True)
    square = [[[1000, 1400], [1100, 1400], [1100, 1500], [1000, 1500], [1000, 1400]]]
    (home / "slides" / "small_HE_tumour.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": square},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Tumor", "color": [200, 0, 0]},
                        },
                    }
                ],
            }
        )
    )
    at = _page("2_Dataset_explorer.py").run()
    _no_errors(at)
    at.selectbox(key="x_dataset").set_value("dsb2018").run()
    assert "Gallery: dsb2018 (2 of 2 samples)" in _text(at)
    assert len(_grid_items(at)) == 2
    at.selectbox(key="x_sort").set_value("n_objects").run()
    at.toggle(key="x_desc").set_value(True).run()
    first = _grid_captions(at)[0]
    assert first.startswith("img2d_512"), first  # 125 nuclei before 65
    thumb = _grid_thumb(at, 0)  # drawn by the tile server when asked for: square, 256 px
    assert thumb.shape == (256, 256, 3) and thumb.std() > 10
    at.selectbox(key="x_sample").set_value("img2d_256").run()
    assert any(c["layout"]["title"]["text"] == "img2d_256" for c in _charts(at))
    # slides: tissue first, test patterns on request, unreadable files listed with the reason
    slides = at.selectbox(key="w_slide")
    names = [str(o).split(" (")[0] for o in slides.options]  # shown as "name (kind, size...)"
    assert names[0] == "small_HE.svs" and "boxes.tiff" not in names
    assert any(html.unescape(c.value).startswith("unreadable.svs:") for c in at.caption)
    # the GeoJSON next to the slide's name in the workspace is overlaid in the deep-zoom
    # viewer (its tiles and objects come from the tile endpoint: tests/test_deepzoom.py)
    view = [c.value for c in at.caption if "level-0 px" in c.value][0]
    assert "1 object(s)" in view, view
    frames = at.get("iframe")
    assert len(frames) == 1 and "/viewer/" in frames[0].proto.src
    at.toggle(key="x_deep").set_value(True).run()  # one sample, deep zoom, ground truth
    assert len(at.get("iframe")) == 2
    at.toggle(key="w_fixtures").set_value(True).run()
    assert any(str(o).startswith("boxes.tiff") for o in at.selectbox(key="w_slide").options)
    _no_errors(at)


def test_explorer_on_point_only_samples(data_env):
    """OCELOT regions without local pixels are drawn on a blank canvas, not an error."""
    at = _page("2_Dataset_explorer.py").run()
    at.selectbox(key="x_dataset").set_value("ocelot").run()
    _no_errors(at)
    assert "Gallery: ocelot (81 of 81 samples)" in _text(at)
    assert len(_grid_items(at)) == 81  # one scrolling grid
    at.selectbox(key="x_sort").set_value("n_objects").run()
    _no_errors(at)


def test_evaluate_page_launches_a_job_and_shows_the_run(data_env):
    from cellbench.runs.jobs import list_jobs, wait_job

    at = _page("3_Evaluate.py").run()
    _no_errors(at)
    at.multiselect(key="e_models").set_value(["unet2d_nuclei_broad_onnx"])
    at.multiselect(key="e_datasets").set_value(["dsb2018"])
    at.button[0].click().run()  # the form's Launch button
    label = "unet2d_nuclei_broad_onnx → dsb2018 / all samples / hovernet"
    assert any(f"Started: {label}" == html.unescape(s.value) for s in at.success), _text(at)
    job = list_jobs()[0]
    assert job["label"] == label
    assert wait_job(job["job_id"], timeout=120)["status"] == "complete"
    at.run()
    assert not at.exception, at.exception
    assert at.dataframe, _text(at)
    runs = at.dataframe[-1].value
    assert list(runs["test_dataset"]) == ["dsb2018"] and list(runs["status"]) == ["complete"]
    bars = [str(p.proto) for p in at.get("progress")]
    assert any(label in b and "done" in b for b in bars), bars
    # the same request again: nothing is computed, and the page says so
    at.button[0].click().run()
    assert any("evaluated before" in i.value for i in at.info), _text(at)
    again = list_jobs()[0]
    assert again["reused"] and again["status"] == "complete" and "pid" not in again


def test_predict_page_runs_a_slide_into_qupath_geojson(data_env):
    """Predict page: a model on the small H&E slide (declared at 1/4 of its resolution so
    that CI predicts few tiles) as a background job; the GeoJSON lands where the slide viewer
    finds it, with the nucleus table, both offered for download."""
    from cellbench.core import config
    from cellbench.runs.jobs import list_jobs, wait_job

    at = _page("8_Predict.py").run()
    _no_errors(at)
    slide = str(data_env / "wsi" / "small_HE.svs")
    at.selectbox(key="p_model").set_value("cb_monuseg")
    at.selectbox(key="p_slide").set_value(slide)
    at.number_input(key="p_mpp").set_value(0.0625)
    at.button[0].click().run()
    started = [html.unescape(s.value) for s in at.success]
    assert any("Started: cb_monuseg on small_HE.svs" in s for s in started), _text(at)
    job = next(j for j in list_jobs() if j.get("kind") == "predict")
    done = wait_job(job["job_id"], timeout=300)
    assert done["status"] == "complete", done
    out = config.home() / "slides" / "small_HE.cb_monuseg.geojson"
    assert out.is_file() and str(out) in done["written"]
    assert json.loads(out.read_text())["features"]
    at.run()
    _no_errors(at)
    names = [b.label for b in at.get("download_button")]
    assert "small_HE.cb_monuseg.geojson" in names and "small_HE.cb_monuseg.nuclei.parquet" in names
    assert any("nuclei from" in c.value for c in at.caption), _text(at)
    # a bad region is one message, not a traceback
    at.text_input(key="p_region").set_value("1,2,3")
    at.button[0].click().run()
    assert any("x,y,w,h" in html.unescape(e.value) for e in at.error), _text(at)


def test_results_page_groups_and_classes(synthetic_runs, no_data):
    at = _page("4_Results.py").run()
    _no_errors(at)
    cov = at.dataframe[0].value  # each run's coverage comes first
    assert {"run", "status", "coverage", "samples"} <= set(cov.columns)
    at.selectbox(key="r_group").set_value("organ").run()
    heat = _charts(at)[0]
    assert heat["data"][0]["type"] == "heatmap"
    assert set(heat["data"][0]["x"]) == {"breast", "kidney", "lung", "colon"}
    assert "95% CI" in json.dumps(heat["data"][0]["customdata"])
    assert all("n=" in t for row in heat["data"][0]["text"] for t in row if t)
    at.selectbox(key="r_group").set_value("class").run()
    assert set(_charts(at)[0]["data"][0]["x"]) == {"all", "epithelial", "inflammatory"}
    table = next(d.value for d in at.dataframe if "resampled" in d.value.columns)
    assert {"mean", "ci_low", "ci_high", "resampled", "n"} <= set(table.columns)
    ok = table[table["n"] >= 5]
    assert (ok["ci_low"] <= ok["mean"]).all() and (ok["mean"] <= ok["ci_high"]).all()
    assert table[table["n"] < 5]["ci_low"].isna().all()  # no interval on fewer than 5


def test_results_error_view(data_env):
    from cellbench.runs import predcache
    from cellbench.runs.evaluate import EvalSpec, evaluate

    run = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    assert predcache.has(run["run_id"], "img2d_256")  # kept for the error view
    at = _page("4_Results.py").run()
    _no_errors(at)
    at.segmented_control(key="r_view").set_value("Sample grid").run()
    _no_errors(at)
    captions = _grid_captions(at)
    assert len(captions) == 2 and not any("ground truth" in c for c in captions), captions
    assert {item[3] for item in _grid_items(at)} == {"e"}  # the run's errors, not the truth
    thumb = _grid_thumb(at, 1)
    green = (thumb[..., 1] > 150) & (thumb[..., 0] < 100) & (thumb[..., 2] < 140)
    assert thumb.shape == (256, 256, 3) and green.sum() > 100  # matched outlines drawn
    at.selectbox(key="g_sort").set_value("n_true").run()
    at.toggle(key="g_desc").set_value(True).run()
    assert _grid_captions(at)[0].startswith("img2d_512")
    next(b for b in at.button if b.key.startswith("g_open")).click().run()
    _no_errors(at)
    counts = {m.label: int(m.value) for m in at.metric}
    assert counts["TP"] > 20 and counts["FN"] >= 0
    assert "img2d_512" in _text(at)
    assert any(b.label == "QuPath GeoJSON (TP / FP / FN)" for b in at.get("download_button"))
    links = [m.value for m in at.markdown]
    assert any("Dataset_explorer?dataset=dsb2018&sample=img2d_512" in m for m in links), links
    at.toggle(key="r_deep").set_value(True).run()  # the same errors in the deep-zoom viewer
    _no_errors(at)
    assert len(at.get("iframe")) == 1 and {m.label for m in at.metric} >= {"TP", "FP", "FN"}


def test_results_of_a_run_without_kept_predictions_keep_them_in_a_background_job(data_env):
    # the first look at a model run whose predictions are not kept (a bundled reference run,
    # a cleared cache) starts one background job; the page shows the ground truth and the
    # job's progress meanwhile, never running the model itself; then the errors
    from cellbench.runs import keep, predcache
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.jobs import list_jobs, wait_job

    run = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    predcache.drop(run["run_id"])
    at = _page("4_Results.py").run()
    at.segmented_control(key="r_view").set_value("Sample grid").run()
    _no_errors(at)
    captions = _grid_captions(at)
    assert len(captions) == 2 and all("ground truth" in c for c in captions), captions
    jobs = [j for j in list_jobs() if j.get("kind") == "keep"]
    assert len(jobs) == 1 and jobs[0]["spec"]["run_id"] == run["run_id"]
    at.run()  # a second look starts no second job
    assert len([j for j in list_jobs() if j.get("kind") == "keep"]) == 1
    done = wait_job(jobs[0]["job_id"], timeout=300)
    assert done["status"] == "complete" and done["kept"] == 2, done
    assert keep.missing(run, ["img2d_256", "img2d_512"]) == []
    from cellbench.viz.review import THUMB_SIDE

    thumb = predcache.load_thumb(run["run_id"], "img2d_512", THUMB_SIDE)
    assert thumb is not None and max(thumb.shape[:2]) == THUMB_SIDE  # drawn by the job
    at.run()
    _no_errors(at)
    captions = _grid_captions(at)
    assert not any("ground truth" in c for c in captions), captions
    next(b for b in at.button if b.key.startswith("g_open")).click().run()
    _no_errors(at)
    assert {m.label for m in at.metric} >= {"TP", "FP", "FN"}


def test_a_failed_keep_job_is_kept_with_its_error_and_not_restarted_by_itself(
    data_env, monkeypatch
):
    # a job that failed is what the page shows (its error, Retry), not silently started again
    from cellbench.runs import keep
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.jobs import submit_task, wait_job

    run = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    jid = submit_task("keep", "x", {"run_id": "no_such_run_1234"}, keep.ENTRY)
    failed = wait_job(jid, timeout=120)
    assert failed["status"] == "failed" and "no_such_run_1234" in failed["error"]
    monkeypatch.setattr(keep, "start", lambda r, total=None: pytest.fail("started again"))
    got = keep.ensure({**run, "run_id": "no_such_run_1234"}, ["img2d_256"])
    assert got["job_id"] == jid and got["status"] == "failed"


def test_cross_dataset_switching_normalisation(synthetic_runs, no_data):
    at = _page("5_Cross-dataset.py").run()
    _no_errors(at)
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert any("normalised by the diagonal" in t for t in titles)
    at.radio(key="c_form").set_value("paper").run()
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert any("as printed in NucFuseRank" in t for t in titles)
    assert any(t.startswith("Top-k fusion") for t in titles)
    fus = at.dataframe[-1].value
    fused = fus[fus["k"] == 2].iloc[0]
    assert fused["observed"] > 0 and fused["expected"] > 0


def test_figures_page_lists_the_standard_figures(synthetic_runs, no_data):
    at = _page("6_Figures.py").run()
    _no_errors(at)
    names = at.selectbox(key="f_pick").options
    assert {"train_test_pq", "cij_diagonal", "ranking", "fusion", "pq_per_organ"} <= set(names)
    at.selectbox(key="f_pick").set_value("fusion").run()
    assert _charts(at)[0]["layout"]["title"]["text"].startswith("Top-k fusion")


def test_export_figure_writes_valid_svg_and_pdf():
    from cellbench.viz.figures import count_bar, export_figure

    pytest.importorskip("kaleido", reason="kaleido is not installed")
    import shutil

    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("figure export needs Chromium (apt-get install chromium)")
    import polars as pl

    fig = count_bar(pl.DataFrame({"center": ["A", "A", "B", None]}), "center")
    svg = export_figure(fig, "svg", 89, 70)
    assert svg.lstrip().startswith(b"<svg") and b"Samples per center" in svg
    assert b'width="336"' in svg  # 89 mm at 96 px per inch
    pdf = export_figure(fig, "pdf", 183, 110)
    assert pdf.startswith(b"%PDF-")


def test_fresh_clone_shows_reference_results(no_data, tmp_path, monkeypatch):
    """Without data and without runs of one's own, committed reference results are shown."""
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    ref = tmp_path / "reference"
    synthetic_store(Store(ref))
    monkeypatch.setenv("CELLBENCH_REFERENCE", str(ref))
    at = _page("0_Home.py").run()
    _no_errors(at)
    assert [m.value for m in at.metric][3] == "6"
    at = _page("5_Cross-dataset.py").run()
    _no_errors(at)
    assert any(c["data"][0]["type"] == "heatmap" for c in _charts(at))


def test_qupath_page_exports_and_reads(data_env):
    at = _page("7_QuPath.py").run()
    _no_errors(at)
    at.selectbox(key="q_dataset").set_value("consep").run()
    assert any("objects:" in m.value for m in at.markdown)
    assert any("epithelial" in m.value for m in at.markdown)
    # the project follows the chosen samples and object type, in a folder that stays
    at.radio(key="q_scope").set_value("chosen samples").run()
    two = at.multiselect(key="q_chosen").options[:2]
    at.multiselect(key="q_chosen").set_value(two).run()
    assert at.button(key="q_proj_go").label == "Write the project (2 images)"
    at.button(key="q_proj_go").click().run()
    _no_errors(at)
    out = Path(at.session_state["q_written"])
    doc = json.loads((out / "project.qpproj").read_text())
    assert len(doc["images"]) == 2 and doc["uri"] == (out / "project.qpproj").as_uri()
    assert [i["imageName"].split(".")[0] for i in doc["images"]] == list(two)
    from urllib.parse import unquote, urlparse

    for im in doc["images"]:
        uri = im["serverBuilder"]["uri"]
        assert Path(unquote(urlparse(uri).path)).is_file(), uri  # the real image files
    assert len(list((out / "objects").glob("*.geojson"))) == 2
    at.text_input(key="q_folder").set_value(str(data_env / "qupath_project")).run()
    _no_errors(at)
    assert any("2 images, 33 path classes" in m.value for m in at.markdown)
    at.text_input(key="q_folder").set_value(str(data_env / "nope")).run()
    assert not at.exception and any("not found" in e.value for e in at.error)


def test_results_pooled_figures_confusion_and_curves_on_ocelot(data_env):
    from cellbench.runs.evaluate import EvalSpec, evaluate

    evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"))
    at = _page("4_Results.py").run()
    _no_errors(at)
    at.selectbox(key="r_metric").set_value("f1").run()
    at.selectbox(key="r_group").set_value("organ").run()
    at.selectbox(key="r_class").set_value("BC").run()
    at.radio(key="r_how").set_value("pooled").run()
    _no_errors(at)
    assert any(c["data"][0]["type"] == "bar" for c in _charts(at))
    pooled = next(d.value for d in at.dataframe if "group" in d.value.columns)
    got = dict(zip(pooled["group"], pooled["value"], strict=True))
    assert got["bladder"] == pytest.approx(0.607, abs=1e-3)  # OCELOT's pooled per-organ F1
    at.segmented_control(key="r_view").set_value("Classification").run()
    _no_errors(at)  # stored predictions: computed at once, no button
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert any(t.startswith("Confusion of matched objects") for t in titles)
    assert any(t.startswith("Detection against the score threshold") for t in titles)
    per_class = next(d.value for d in at.dataframe if "correct" in d.value.columns)
    assert set(per_class["class"]) == {"BC", "TC"} and (per_class["n_true"] > 0).all()


def test_cross_dataset_on_the_committed_nucfuse_test(no_data, monkeypatch):
    from cellbench.core import config

    monkeypatch.setenv("CELLBENCH_REFERENCE", str(config.REPO_DIR / "results" / "reference"))
    at = _page("5_Cross-dataset.py").run()
    _no_errors(at)
    at.selectbox(key="c_testset").set_value("nucfuse-test@v1").run()
    _no_errors(at)
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    want = "on test set nucfuse-test@v1 (consep, cryonuseg, dsb2018, monuseg"
    assert any(want in t for t in titles), titles


def test_predict_page_without_data_offers_upload_and_asks_for_an_input(no_data):
    at = _page("8_Predict.py").run()
    _no_errors(at)
    assert at.radio(key="p_source").value == "an image to upload"
    at.button[0].click().run()
    assert any("Choose a model and an input" in w.value for w in at.warning), _text(at)


def test_results_defaults_are_honest(no_data):
    """Issue 32 item 6: every complete run of the test set chosen, a group-by with several
    groups by default (never a one-center heatmap), ``?run=`` carried to every one-run panel."""
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    synthetic_store(Store(), train_sets=tuple(f"d{k}" for k in range(10)), test_sets=("consep",))
    at = _page("4_Results.py").run()
    _no_errors(at)
    runs = at.multiselect(key=next(k for k in at.session_state if k.startswith("r_runs_")))
    assert len(runs.value) == len(runs.options) == 10  # all of them (the first 8 before)
    group = at.selectbox(key="r_group")
    assert group.value != "test_dataset" and "(" in group.format_func(group.value)
    target = runs.value[-1]
    at = _page("4_Results.py")
    at.query_params["run"] = target
    at.run()
    at.segmented_control(key="r_view").set_value("Classification").run()
    assert at.selectbox(key="r_drun").value == target
