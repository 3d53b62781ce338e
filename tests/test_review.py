"""Review tools: tags on samples and objects, object filters, side by side, saved views."""

from __future__ import annotations

import csv
import io

from test_app_pages import _grid_captions, _no_errors, _page, _text


def test_tags_are_kept_exported_and_never_lost(tmp_path):
    import pytest

    from cellbench.core import config
    from cellbench.core.errors import CellbenchError
    from cellbench.runs import tags

    tags.set_sample_tags("consep", "test_1", ["label error", "  ambiguous  "])
    assert tags.sample_tags("consep", "test_1") == ["ambiguous", "label error"]
    tags.tag_object("consep", "test_1", "run_a", "FP", 7, "model error")
    tags.tag_object("consep", "test_1", "run_a", "FP", 7, "model error")  # kept once
    assert len(tags.object_tags("run_a", "test_1")) == 1
    assert tags.tagged_samples("consep", "model error") == {"test_1"}
    rows = list(csv.DictReader(io.StringIO(tags.to_csv())))
    assert [r["kind"] for r in rows] == ["sample", "sample", "object"]
    assert rows[2]["object_id"] == "7" and rows[2]["layer"] == "FP"
    with pytest.raises(CellbenchError, match="empty"):
        tags.tag_object("consep", "test_1", "run_a", "FP", 7, "   ")
    objs = [
        {"id": 7, "layer": "FP", "cls": "x", "poly": [[[0, 0], [4, 0], [4, 4], [0, 0]]]},
        {"id": 7, "layer": "TP", "cls": "x", "pt": [1, 2]},
    ]
    doc = tags.objects_geojson(objs, tags.object_tags("run_a", "test_1"))
    (f,) = doc["features"]
    assert f["properties"]["classification"] == {"name": "model error"}
    assert f["geometry"]["type"] == "MultiPolygon"
    # an unreadable file is moved aside, not overwritten, and reads as no tags
    path = config.home() / "tags.json"
    path.write_text("{not json")
    assert tags.load() == {"samples": [], "objects": []}
    tags.set_sample_tags("consep", "test_2", ["ambiguous"])
    assert (config.home() / "tags.json.unreadable").read_text() == "{not json"
    assert tags.sample_tags("consep", "test_2") == ["ambiguous"]


def test_grid_object_filters_tags_compare_and_saved_views(data_env):
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.tags import tagged_samples

    a = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    b = evaluate(
        EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript", preset="stardist")
    )
    at = _page("4_Results.py").run()
    at.segmented_control(key="r_view").set_value("Sample grid").run()
    at.selectbox(key="g_run").set_value(a["run_id"]).run()
    _no_errors(at)
    at.toggle(key="g_obj_on").set_value(True).run()
    _no_errors(at)
    assert "matching objects in" in _text(at)
    assert at.selectbox(key="g_sort").value == "matching objects"
    at.multiselect(key="g_obj_kind").set_value(["TP"]).run()
    at.number_input(key="g_obj_area").set_value(1e9).run()  # no nucleus is that large
    assert "0 matching objects in 0 samples" in _text(at)
    at.number_input(key="g_obj_area").set_value(0.0).run()
    link = next(c.value for c in at.code if c.value.startswith("Results?"))
    assert "view=grid" in link and "objects=True" in link and "kind=TP" in link
    at.text_input(key="g_view_name").set_value("big TPs").run()
    at.button(key="g_view_save").click().run()
    assert any("big TPs" in m.value for m in at.markdown)
    # a sample opened: tags, and the same sample under the other run side by side
    next(b_ for b_ in at.button if b_.key.startswith("g_open")).click().run()
    _no_errors(at)
    key = next(m.key for m in at.multiselect if m.key.startswith("t_sample_"))
    at.multiselect(key=key).set_value(["label error"]).run()
    assert len(tagged_samples("dsb2018", "label error")) == 1
    at.toggle(key="r_cmp").set_value(True).run()
    _no_errors(at)
    at.selectbox(key="r_compare").set_value(b["run_id"]).run()
    _no_errors(at)
    caps = [c.value for c in at.caption if "TP " in c.value]
    assert len(caps) == 2 and "stardist" in caps[1], caps
    # the grid of samples tagged "label error"
    at.selectbox(key="g_tag").set_value("label error").run()
    assert "1 of 1 samples" in _text(at)


def test_a_shared_view_link_restores_the_grid(data_env):
    from cellbench.runs.evaluate import EvalSpec, evaluate

    a = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    at = _page("4_Results.py")
    at.query_params.update({"view": "grid", "run": a["run_id"], "sort": "n_true", "desc": "True"})
    at.run()
    _no_errors(at)
    assert at.segmented_control(key="r_view").value == "Sample grid"
    assert at.selectbox(key="g_sort").value == "n_true" and at.toggle(key="g_desc").value
    assert _grid_captions(at)[0].startswith("img2d_512")


def test_a_confusion_cell_lists_its_samples_in_the_grid(data_env):
    # the per-sample cells add up to the matrix; a click on a cell (its callback's state)
    # shows the grid of the samples with objects in that cell
    import numpy as np

    from cellbench.analysis.detail import cell_samples, run_analysis
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store
    from cellbench.viz.figures import confusion_heatmap

    run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"))
    a = run_analysis(Store(), run["run_id"])
    total = np.zeros_like(np.array(a["confusion"]))
    for cells in a["cells"].values():
        for i, j, n in cells:
            total[i, j] += n
    assert (total == np.array(a["confusion"])).all()
    bc, tc = a["classes"][:2]
    got = cell_samples(a, bc, tc)
    assert got and sum(got.values()) == a["confusion"][0][1]
    cells = confusion_heatmap(a).data[1]  # the clickable markers: (true, pred) per cell
    assert [bc, tc, str(a["confusion"][0][1])] in cells.customdata.tolist()
    at = _page("4_Results.py")
    at.session_state["r_view"] = "Sample grid"
    at.session_state["g_run"] = run["run_id"]
    at.session_state["g_cell"] = (run["run_id"], bc, tc)
    at.run()
    _no_errors(at)
    assert f"{len(got)} samples with true" in _text(at)
    assert f"{len(got)} of {len(got)} samples" in _text(at)
    at.button(key="g_cell_clear").click().run()
    assert "samples with true" not in _text(at)
