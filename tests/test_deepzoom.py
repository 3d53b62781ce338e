"""The deep-zoom viewer's tile endpoint and the objects it overlays."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tifffile
from PIL import Image


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), ""


@pytest.fixture
def pyramid(tmp_path):
    """A 1500 x 1100 RGB slide with a 2x pyramid (tiffslide reads it); a gradient image."""
    yy, xx = np.mgrid[0:1100, 0:1500]
    img = np.stack([xx % 256, yy % 256, (xx // 6) % 256], -1).astype(np.uint8)
    path = tmp_path / "pyr.tiff"
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=(256, 256), photometric="rgb", subifds=1)
        tw.write(img[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1)
    return path, img


def test_tiles_of_a_slide_are_its_pixels_at_each_level(pyramid):
    from cellbench.app import tiles

    path, img = pyramid
    reg = tiles.Registry()
    key = reg.slide(path)
    src = reg.sources[key]
    assert (src.width, src.height, src.max_level) == (1500, 1100, 11)
    full = src.tile(11, 1, 2)  # full resolution: pixels 256..511 x 512..767
    np.testing.assert_array_equal(full, img[512:768, 256:512])
    edge = src.tile(11, 5, 4)  # clipped at the slide's edge
    assert edge.shape == (1100 - 1024, 1500 - 1280, 3)
    np.testing.assert_array_equal(edge, img[1024:, 1280:])
    half = src.tile(10, 0, 0)  # one level down: from the pyramid's 2x level
    np.testing.assert_array_equal(half, img[:512:2, :512:2])
    whole = src.tile(2, 0, 0)  # the coarsest levels come from the overview
    assert whole.shape == (3, 3, 3)  # ceil(1100 / 512), ceil(1500 / 512)
    assert src.tile(12, 0, 0) is None and src.tile(11, 6, 0) is None and src.tile(-1, 0, 0) is None


def test_an_image_array_is_served_the_same_way():
    from cellbench.app import tiles

    img = (np.arange(300 * 200 * 3) % 251).astype(np.uint8).reshape(300, 200, 3)
    reg = tiles.Registry()
    src = reg.sources[reg.image(img, mpp=0.25)]
    assert (src.width, src.height, src.mpp, src.max_level) == (200, 300, 0.25, 9)
    np.testing.assert_array_equal(src.tile(9, 0, 1), img[256:, :])
    grey = reg.sources[reg.image(np.full((10, 12), 7, np.uint16))]
    assert grey.tile(4, 0, 0).shape == (10, 12, 3)


def test_the_endpoint_serves_only_what_was_registered_under_its_token(pyramid):
    from cellbench.app import tiles

    path, img = pyramid
    srv = tiles.server()
    key = tiles.REGISTRY.slide(path)
    obj = {"id": 1, "layer": "FP", "cls": "</script><b>x", "poly": [[[0, 0], [9, 0], [9, 9]]]}
    view = tiles.REGISTRY.view(tiles.View(key, [obj], {"FP": "#ff1744"}, "a <title>"))
    base = f"http://127.0.0.1:{srv.port}/{srv.token}"
    code, body, ctype = _get(f"{base}/tile/{key}/11/0_0.jpg")
    assert code == 200 and ctype == "image/jpeg"
    got = np.asarray(Image.open(io.BytesIO(body)))
    assert got.shape == (256, 256, 3) and np.abs(got.astype(int) - img[:256, :256]).mean() < 6
    code, body, _ = _get(f"{base}/viewer/{view}")
    page = body.decode()
    assert code == 200 and "openseadragon.min.js" in page
    assert "</script><b>" not in page and "a \\u003ctitle>" in page  # settings cannot close tags
    code, body, _ = _get(f"{base}/objects/{view}.json")
    assert json.loads(body)["objects"] == [obj]
    assert _get(f"{base}/openseadragon.min.js")[0] == 200
    for bad in (
        f"http://127.0.0.1:{srv.port}/wrongtoken/tile/{key}/11/0_0.jpg",
        f"http://127.0.0.1:{srv.port}/",
    ):
        assert _get(bad)[0] == 403
    for missing in (
        f"{base}/tile/{'0' * 24}/11/0_0.jpg",  # never registered
        f"{base}/tile/{key}/11/9_9.jpg",  # outside the slide
        f"{base}/tile/{key}/x/0_0.jpg",
        f"{base}/viewer/{'0' * 24}",
        f"{base}/../../etc/passwd",
    ):
        assert _get(missing)[0] == 404, missing


def test_grid_thumbnails_are_drawn_on_request_by_their_set(monkeypatch):
    # the scrolling grid's images: thumbnail k of a registered set, drawn by the set's own
    # function when the browser first asks (errors or ground truth), 404 where it cannot be
    from cellbench.app import tiles

    asked = []

    def draw(sid, errors):
        asked.append((sid, errors))
        if sid == "broken":
            return None
        return np.full((40, 40, 3), 200 if errors else 50, np.uint8)

    srv = tiles.server()
    key = tiles.REGISTRY.thumb_set("t" * 24, tiles.Thumbs(["a", "b/../x", "broken"], draw))
    base = f"{srv.base()}thumb/{key}"
    assert asked == []  # nothing drawn before the browser asks
    code, body, ctype = _get(f"{base}/1_e.jpg")
    assert code == 200 and ctype == "image/jpeg"
    assert np.asarray(Image.open(io.BytesIO(body))).mean() > 150
    code, body, _ = _get(f"{base}/0_t.jpg")
    assert code == 200 and np.asarray(Image.open(io.BytesIO(body))).mean() < 100
    assert asked == [("b/../x", True), ("a", False)]
    for missing in (f"{base}/2_e.jpg", f"{base}/3_e.jpg", f"{base}/0_x.jpg", f"{base}/-1_e.jpg"):
        assert _get(missing)[0] == 404, missing
    assert _get(f"http://127.0.0.1:{srv.port}/wrong/thumb/{key}/0_e.jpg")[0] == 403


def test_an_unreadable_slide_is_refused_when_registered(tmp_path):
    from cellbench.app import tiles
    from cellbench.core.errors import CellbenchError

    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"not a slide")
    with pytest.raises(CellbenchError, match="bad.svs"):
        tiles.Registry().slide(bad)


def test_viewer_objects_carry_class_probability_and_measurements():
    from cellbench.data.sample import Points
    from cellbench.viz.deepzoom import instance_objects, point_objects

    class C:
        def __init__(self, i, name):
            self.id, self.name, self.color = i, name, None

    lab = np.zeros((20, 30), np.int32)
    lab[2:6, 3:8] = 4  # 4 x 5 pixels
    lab[10:12, 20:30] = 9
    objs = instance_objects(
        lab, "TP", {4: 1, 9: 2}, {4: 0.9}, [C(1, "tumour"), C(2, "immune")], mpp=0.5, ids=[4]
    )
    assert len(objs) == 1
    o = objs[0]
    assert (o["id"], o["layer"], o["cls"]) == (4, "TP", "tumour")
    assert o["props"]["probability"] == 0.9 and o["props"]["area (px)"] == 20
    assert o["props"]["area (µm²)"] == 5.0
    xs = [x for x, _ in o["poly"][0]]
    ys = [y for _, y in o["poly"][0]]
    assert (min(xs), max(xs), min(ys), max(ys)) == (3, 8, 2, 6)  # pixel edges
    pts = Points(np.array([[5.0, 6.0], [7.0, 8.0]]), np.array([2, 1]), np.array([0.3, 0.8]))
    got = point_objects(pts, "FN", [C(1, "tumour"), C(2, "immune")], index=[1])
    assert got == [
        {
            "id": 1,
            "layer": "FN",
            "cls": "tumour",
            "color": got[0]["color"],
            "pt": [7.0, 8.0],
            "r": 5.0,
            "props": {"probability": pytest.approx(0.8)},
        }
    ]


def test_error_objects_are_the_engines_matching(data_env, tmp_path):
    from cellbench.data.samples import iter_samples
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store
    from cellbench.viz.deepzoom import error_objects
    from cellbench.viz.review import error_view

    folder = tmp_path / "preds"
    folder.mkdir()
    from cellbench.data.catalog import load_catalog

    cat = load_catalog()
    rec, s = next(iter_samples(cat, "consep", "test"))
    pred = s.instances.copy()
    pred[pred == pred.max()] = 0  # one nucleus missed
    np.save(folder / f"{rec.sample_id}.npy", pred)
    st = Store()
    run = evaluate(
        EvalSpec(dataset="consep", split="test", predictions=str(folder), samples=[rec.sample_id]),
        cat,
        st,
    )
    image, objs, note = error_objects(st.get_run(run["run_id"]), rec.sample_id, cat, st)
    _, counts, _ = error_view(st.get_run(run["run_id"]), rec.sample_id, cat, st)
    layers = [o["layer"] for o in objs]
    assert layers.count("TP") == counts["tp"] and layers.count("FN") == counts["fn"] == 1
    assert layers.count("FP") == counts["fp"] == 0
    assert image.shape[:2] == s.instances.shape and "hovernet" in note
    assert all(o["props"]["IoU"] == 1.0 for o in objs if o["layer"] == "TP")
    # the object table behind the grid's object filters: the same matching
    from cellbench.analysis.objects import object_table

    tab = object_table(st.get_run(run["run_id"]), cat, st)
    kinds = dict(tab.group_by("kind").len().iter_rows())
    assert kinds == {"TP": counts["tp"], "FN": 1}
    fn = tab.filter(tab["kind"] == "FN").row(0, named=True)
    assert (
        fn["object_id"] == s.instances.max()
        and fn["area_px"] == (s.instances == fn["object_id"]).sum()
    )
