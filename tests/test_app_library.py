"""The library pieces behind the app's views: vocabulary, filters, sample grid, kept predictions,
print layout, slide tiles and thumbnail overlays (small hand-made inputs)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cellbench.data.sample import Points, Sample


def test_organ_vocabulary_and_tcga_centers():
    from cellbench.data.vocabulary import center_label, center_name, organ, standardise

    assert organ("Head-and-Neck") == organ("head and neck") == "head and neck"
    assert organ("pancreatic") == "pancreas" and organ("thyroid_gland") == "thyroid"
    assert organ(None) is None and organ("brain") == "brain"
    assert center_name("A7", "TCGA-A7-A13E") == "Christiana Healthcare"
    assert center_name("ZZ", "TCGA-ZZ-0001") == "TCGA site ZZ"  # outside the table: said so
    assert center_name("UHCW", "patient-1") is None  # not a TCGA case
    m = standardise({"organ": "head-and-neck", "center": "2Z", "patient_id": "TCGA-2Z-A9J9"})
    assert m["organ"] == "head and neck" and m["center_name"] == "Moffitt Cancer Center"
    kept = standardise({"center": "A7", "patient_id": "TCGA-A7-1", "center_name": "own"})
    assert kept["center_name"] == "own"
    assert center_label("A7") == "A7 · Christiana Healthcare" and center_label("UHCW") == "UHCW"


def test_catalog_organs_are_in_the_vocabulary():
    from cellbench.data.catalog import load_catalog

    organs = {o for d in load_catalog() for o in d.organs}
    assert "head and neck" in organs and "pancreas" in organs
    assert not {"head-and-neck", "pancreatic", "thyroid gland", "ovarian"} & organs


def _facet_inputs():
    datasets = pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "available": [True, True, False],
            "stain": [["H&E"], ["H&E"], ["PAP"]],
            "modality": ["brightfield"] * 3,
            "organs": [["breast", "lung"], ["colon"], ["cervix"]],
            "tasks": [["detection"]] * 3,
            "license": ["x"] * 3,
            "classes": [[], [], []],
            "centers": [["A7"], ["UHCW"], []],
        },
        schema_overrides={k: pl.List(pl.Utf8) for k in ("classes",)},
    )
    samples = pl.DataFrame(
        {
            "dataset": ["a", "a", "b"],
            "sample_id": ["a1", "a2", "b1"],
            "organ": ["breast", "lung", "colon"],
            "stain": ["H&E"] * 3,
            "center": ["A7", "A7", "UHCW"],
            "split": ["train", "test", "test"],
            "category": [None, None, None],
            "sex": ["F", "M", None],
            "age": [50, 60, None],
        }
    )
    return datasets, samples


def test_one_set_of_filters_drives_datasets_and_samples():
    from cellbench.data.facets import Choice, apply, options

    ds, sm = _facet_inputs()
    assert options(ds, sm)["organ"] == ["breast", "cervix", "colon", "lung"]
    d, s = apply(Choice({"organ": ["lung"]}), ds, sm)
    assert d["id"].to_list() == ["a"] and s["sample_id"].to_list() == ["a2"]
    # a dataset-level facet keeps a dataset without local data
    d, s = apply(Choice({"stain": ["PAP"]}), ds, sm)
    assert d["id"].to_list() == ["c"] and s.is_empty()
    # a choice only samples can answer drops datasets without matching local samples
    d, s = apply(Choice({"split": ["test"]}), ds, sm)
    assert d["id"].to_list() == ["a", "b"] and s["sample_id"].to_list() == ["a2", "b1"]
    d, s = apply(Choice({}, age=(55, 70)), ds, sm)
    assert d["id"].to_list() == ["a"] and s["sample_id"].to_list() == ["a2"]
    d, s = apply(Choice({}, available=False), ds, sm)
    assert d["id"].to_list() == ["c"] and s.is_empty()


def test_sample_grid_sorts_and_filters():
    from cellbench.analysis.grid import sample_grid, select
    from cellbench.runs.store import Store

    store = Store()
    base = {
        "run_id": "r1",
        "model_id": "m",
        "train_datasets": "",
        "test_dataset": "d",
        "split": None,
        "level": "sample",
        "stain": "H&E",
        "category": None,
        "slide_id": None,
        "patient_id": None,
    }
    rows = []
    for k, (pq, center) in enumerate([(0.5, "A"), (0.9, "B"), (0.1, "A")]):
        sid = f"s{k}"
        rows += [
            {
                **base,
                "sample_id": sid,
                "center": center,
                "organ": "lung",
                "class": "all",
                "metric": "pq",
                "value": pq,
            },
            {
                **base,
                "sample_id": sid,
                "center": center,
                "organ": "lung",
                "class": "tumour",
                "metric": "n_true",
                "value": float(k),
            },
        ]
    from cellbench.runs.store import SCHEMA

    store.append("r1", pl.DataFrame(rows, schema=SCHEMA), {f"s{k}": {} for k in range(3)})
    g = sample_grid(store, "r1")
    assert g["sample_id"].to_list() == ["s0", "s1", "s2"]
    assert g["n_true[tumour]"].to_list() == [0.0, 1.0, 2.0]
    s = select(g, "pq", True, {"center": ["A"]})
    assert s["sample_id"].to_list() == ["s0", "s2"]
    s = select(g, "pq", False, ranges={"pq": (0.4, 1.0)})
    assert s["sample_id"].to_list() == ["s0", "s1"]


def test_kept_predictions_round_trip_and_damage():
    from cellbench.runs import predcache

    lab = np.zeros((8, 8), np.int32)
    lab[1:3, 1:3] = 5
    predcache.save("run_a", "x/y", (lab, {5: 2}, {5: 0.75}))
    got = predcache.load("run_a", "x/y")
    assert np.array_equal(got[0], lab) and got[1] == {5: 2} and got[2] == {5: 0.75}
    pts = Points(np.array([[1.0, 2.0]]), np.array([1]), np.array([0.5]))
    predcache.save("run_a", "p", pts)
    back = predcache.load("run_a", "p")
    assert np.array_equal(back.xy, pts.xy) and back.cls.tolist() == [1]
    predcache._file("run_a", "p").write_bytes(b"not a zip")
    assert predcache.load("run_a", "p") is None  # damaged: recomputed, never an error
    assert predcache.load("run_b", "x/y") is None
    from cellbench.runs.store import Store

    Store().delete_run("run_a")  # a deleted run's kept predictions go with it
    assert predcache.load("run_a", "x/y") is None and not predcache.run_dir("run_a").exists()


def test_print_layout_keeps_labels_and_a_readable_plot(no_chromium_skip):
    from cellbench.viz import figures

    runs = ["cb_monuseg → monuseg/test (hovernet, n=14)", "predictions:hovernet_fast → consep"]
    centers = [
        "A7 · Christiana Healthcare",
        "AR · Mayo",
        "B0 · University of Pittsburgh",
        "HC · International Genomics Consortium",
        "CH · Indivumed",
        "21 · Fox Chase Cancer Center",
        "E2 · Roswell Park",
    ]
    s = pl.DataFrame(
        [
            {"run": r, "center": c, "mean": 0.5, "n": 6, "ci_low": 0.4, "ci_high": 0.6}
            for r in runs
            for c in centers
        ]
    )
    for fig in (
        figures.summary_heatmap(s, "run", "center", "pq"),
        figures.ci_bars(s, "center", "pq", color="run"),
    ):
        for width in (89, 120, 183):
            svg = figures.export_figure(fig, "svg", width, 70).decode()
            w, h = figures.plot_area(svg)
            assert w >= figures.MIN_PLOT_PX and h >= figures.MIN_PLOT_PX, (width, w, h)
            assert all(c.split(" ·")[0] in svg for c in centers)
    many = pl.DataFrame(
        {
            "g": [f"group number {k}" for k in range(60)],
            "mean": [0.5] * 60,
            "n": [5] * 60,
            "ci_low": [0.4] * 60,
            "ci_high": [0.6] * 60,
        }
    )
    # too many bars across a column: they turn to run down the page, every label kept
    svg = figures.export_figure(figures.ci_bars(many, "g", "pq"), "svg", 89, 70).decode()
    assert all(f"group number {k}<" in svg for k in range(60))
    assert min(figures.plot_area(svg)) >= figures.MIN_PLOT_PX
    import plotly.graph_objects as go

    line = go.Figure(go.Scatter(x=[f"group number {k}" for k in range(60)], y=[1.0] * 60))
    with pytest.raises(figures.FigureTooSmall, match="60 categories"):
        figures.print_layout(line, 89, 70)


def test_slides_are_probed_and_their_objects_read_for_the_viewer(tmp_path):
    import tifffile

    from cellbench.viz import slide
    from cellbench.viz.deepzoom import qupath_objects

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, img, tile=(256, 256), photometric="rgb")
    info = slide.probe(path)
    assert info.kind == "tissue" and info.dimensions == (900, 700)
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"nonsense")
    assert slide.probe(bad).kind == "unreadable" and "bad.svs" in slide.probe(bad).error
    objs = slide.read_objects(
        b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [310, 260]},'
        b' "properties": {"classification": {"name": "T", "color": [255, 0, 0]},'
        b' "measurements": {"Nucleus: Area": 31.5}}}'
    )
    got = qupath_objects(objs, "f.geojson", mpp=0.5)
    assert got[0]["pt"] == [310.0, 260.0] and got[0]["color"] == "#ff0000"
    assert got[0]["cls"] == "T" and got[0]["props"]["Nucleus: Area"] == 31.5


def test_thumbnail_outlines_are_crisp_in_the_legend_colour():
    from cellbench.viz.overlay import class_colors, sample_overlay

    class C:
        def __init__(self, i, name, color=None):
            self.id, self.name, self.color = i, name, color

    lab = np.zeros((1000, 1000), np.int32)
    lab[100:300, 100:300] = 1
    s = Sample(
        "d", "s", None, image=np.full((1000, 1000, 3), 128, np.uint8), instances=lab, classes={1: 2}
    )
    classes = [C(1, "a"), C(2, "b")]
    th = sample_overlay(s, classes, max_side=250)
    assert th.shape == (250, 250, 3)
    colour = class_colors(classes)[2]
    assert (th.reshape(-1, 3) == colour).all(1).sum() > 100  # exact legend colour, not blended
    s.annotated_region = np.zeros((1000, 1000), bool)
    s.annotated_region[:, :500] = True
    dim = sample_overlay(s, classes, max_side=250)
    assert dim[200, 240].sum() < th[200, 240].sum()  # outside the annotated region: dimmed
    assert np.array_equal(dim[10, 10], th[10, 10])


def test_class_table_from_the_confusion():
    from cellbench.analysis.detail import class_table

    t = class_table({"classes": ["a", "b"], "confusion": [[8, 2, 1], [1, 5, 0], [3, 0, 0]]})
    a = t.row(0, named=True)
    assert (a["n_true"], a["n_pred"], a["correct"]) == (11, 12, 8)
    assert a["f1"] == pytest.approx(16 / 23)


def test_titles_wrap_to_the_width_and_heatmap_rows_hold_their_cell_text():
    """Issue 33: titles were clipped at 89 mm and two-line cell labels overflowed their rows."""
    import plotly.graph_objects as go

    from cellbench.viz.figures import PRINT_FONT_PX, print_layout

    title = "Mean pq (hovernet_lite): trained on (rows), tested on (columns), every test split"
    fig = go.Figure(
        go.Heatmap(
            z=[[0.5, 0.4], [0.3, 0.2], [0.1, 0.0]],
            x=["monuseg", "consep"],
            y=["a", "b", "c"],
            text=[["0.50<br>n=14", "0.40<br>n=224"]] * 3,
            texttemplate="%{text}",
        )
    )
    fig.update_layout(title=title)
    f, h_mm = print_layout(fig, 89, 40)
    lines = f.layout.title.text.split("<br>")
    w_px = 89 / 25.4 * 96
    assert len(lines) > 1 and " ".join(lines) == title  # wrapped, never cut
    assert all(len(ln) * 0.55 * (PRINT_FONT_PX + 1) <= w_px - 20 for ln in lines)
    one, h1 = print_layout(
        go.Figure(go.Heatmap(z=[[1, 2]] * 3, x=["a", "b"], y=["a", "b", "c"])), 89, 40
    )
    assert h_mm > h1  # two text lines per cell need taller rows


def test_figure_file_names_are_safe_and_each_figure_is_written_once():
    from cellbench.cli.figures import _twin, safe_file_name

    assert safe_file_name("train_test_pq_onnx:unet2d_nuclei") == "train_test_pq_onnx_unet2d_nuclei"
    assert _twin("ranking", "03_ranking_per-dataset") and _twin("fusion", "03_fusion")
    assert _twin("train_test_pq_hovernet_lite", "03_train_test_pq")
    assert not _twin("pq_per_center", "03_tcga_centers")


def test_typed_paths_are_confined_to_the_data_root_and_workspace(tmp_path, monkeypatch):
    """Issue 32 item 4: the same refusal for an existing system folder and a missing one;
    inside the data root or the workspace (links followed first) passes; the environment
    widens or lifts it."""
    from cellbench.app import ui
    from cellbench.core.errors import CellbenchError

    data, home, other = tmp_path / "data", tmp_path / "home", tmp_path / "other"
    for d in (data, home, other):
        d.mkdir()
    monkeypatch.setenv("CELLBENCH_DATA", str(data))
    monkeypatch.setenv("CELLBENCH_HOME", str(home))
    monkeypatch.delenv(ui.PATHS_ENV, raising=False)
    said = []
    for p in ("/etc", "/no/such/folder", str(other / "x.tif"), str(data / ".." / "other")):
        with pytest.raises(CellbenchError) as e:
            ui.confined(p, "the path")
        said.append(str(e.value))
    assert len(set(said)) == 1 and "/etc" not in said[0]
    (data / "link").symlink_to(other)
    with pytest.raises(CellbenchError):
        ui.confined(str(data / "link" / "a.tif"))  # a link out of the data root leads out
    assert ui.confined(str(data / "img" / "*.png")) == data / "img" / "*.png"
    assert ui.confined(f"{home}/masks/{{stem}}.tif").name == "{stem}.tif"
    monkeypatch.setenv(ui.PATHS_ENV, str(other))
    assert ui.confined(str(other / "x.tif")) == other / "x.tif"
    monkeypatch.setenv(ui.PATHS_ENV, "*")
    assert str(ui.confined("/etc")) == "/etc"


def test_as_text_makes_no_link_of_a_url():
    from cellbench.app import ui

    out = ui.as_text("see http://example.invalid/x and www.example.invalid or a@b.org")
    assert "://" not in out and "http" in out and "<" not in out
    assert "\u2060" not in out and "&#8288;" in out  # the joiner, as an entity


def test_grid_tiles_are_squares_of_one_size():
    from cellbench.viz.overlay import square

    wide = np.zeros((100, 256, 3), np.uint8)
    got = square(wide)
    assert got.shape == (256, 256, 3)
    assert (got[78:178] == 0).all() and (got[:78] == 245).all() and (got[178:] == 245).all()
    assert square(np.ones((50, 50), np.uint8)).shape == (50, 50, 3)


def test_warm_loads_what_a_first_table_and_figure_load():
    # Home warms these in the background (ui.prefetch); Streamlit's and plotly's lazy parts
    # must still be where ui.warm reaches them after an upgrade
    import sys

    from cellbench.app import ui

    ui.warm()
    assert {"pandas", "pyarrow", "plotly.graph_objs"} <= set(sys.modules)


def test_figure_titles_show_user_strings_as_text():
    # plotly reads <b>, <a href>, <br> in titles: a sample id with markup must stay text
    import numpy as np

    from cellbench.viz import figures

    fig = figures.image_figure(np.zeros((4, 4, 3), np.uint8), "<b>x</b> & <a href='y'>z</a>")
    assert fig.layout.title.text == "&lt;b&gt;x&lt;/b&gt; &amp; &lt;a href='y'&gt;z&lt;/a&gt;"
