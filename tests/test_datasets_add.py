"""``cellbench datasets add / remove``: a folder of images with label masks as a dataset."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from cellbench.core.errors import CatalogError, DataError


def _folder(tmp_path: Path, n: int = 5) -> Path:
    """n image / instance-mask pairs; s3's mask has the wrong size, s4's labels are float."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"s{k}.png"
        )
        lab = np.zeros((64, 64), np.uint16)
        lab[5:15, 5:15] = 1
        lab[30:40, 30:45] = 7
        tifffile.imwrite(tmp_path / "mask" / f"s{k}.tif", lab)
    tifffile.imwrite(tmp_path / "mask" / "s3.tif", np.zeros((60, 64), np.uint16))
    tifffile.imwrite(tmp_path / "mask" / "s4.tif", np.zeros((64, 64), np.float32))
    return tmp_path


def test_add_keeps_the_good_pairs_names_the_bad_and_evaluates(tmp_path):
    from cellbench.cli import app
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import load_sample, sample_table

    d = _folder(tmp_path)
    res = CliRunner().invoke(
        app,
        ["datasets", "add", "mine", "--images", f"{d}/img/*.png"]
        + ["--labels", f"{d}/mask/{{stem}}.tif", "--mpp", "0.5", "--organ", "Head-and-Neck"],
    )
    assert res.exit_code == 0, res.output
    assert "added 3 samples to 'mine' (2 left out)" in res.output
    assert f"left out {d}/mask/s3.tif: sizes differ" in res.output
    assert f"left out {d}/mask/s4.tif: float labels" in res.output
    cat = load_catalog()
    t = sample_table(cat, ["mine"])
    assert t["sample_id"].to_list() == ["s0", "s1", "s2"]
    assert t["n_objects"].to_list() == [2, 2, 2] and t["mpp"].to_list() == [0.5] * 3
    assert set(t["organ"]) == {"head and neck"}  # the shared vocabulary
    s = load_sample(cat, "mine", "s1")
    assert s.image.shape == (64, 64, 3) and set(np.unique(s.instances)) == {0, 1, 7}
    # the dataset is evaluated like any other: its own masks as predictions score PQ 1
    pred = d / "pred"
    pred.mkdir()
    for k in range(3):
        (pred / f"s{k}.tif").write_bytes((d / "mask" / f"s{k}.tif").read_bytes())
    res = CliRunner().invoke(app, ["evaluate", "--dataset", "mine", "--predictions", str(pred)])
    assert res.exit_code == 0, res.output
    from cellbench.runs.store import Store

    run = Store().runs().row(0, named=True)
    assert run["test_dataset"] == "mine" and run["n_samples"] == 3
    pq = Store().scan([run["run_id"]]).collect()
    got = pq.filter((pq["metric"] == "pq") & (pq["level"] == "dataset"))["value"][0]
    assert got == pytest.approx(1.0, abs=1e-5)
    # removed: entry and files
    res = CliRunner().invoke(app, ["datasets", "remove", "mine"])
    assert res.exit_code == 0, res.output
    assert "mine" not in load_catalog().ids
    from cellbench.core import config

    assert not (config.user_data_root() / "mine").exists()


def test_binary_and_class_masks_and_splits(tmp_path):
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import load_sample, sample_table
    from cellbench.data.user_data import add_dataset

    d = tmp_path
    (d / "img").mkdir()
    (d / "cls").mkdir()
    m = np.zeros((32, 32), np.uint8)
    m[2:8, 2:8] = 1  # tumour
    m[2:8, 20:28] = 1  # another tumour nucleus (not touching)
    m[20:26, 20:26] = 2  # lymphocyte
    for k in range(2):
        Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(d / "img" / f"c{k}.png")
        Image.fromarray(m).save(d / "cls" / f"c{k}.png")
    (d / "classes.yaml").write_text("1: tumour\n2: lymphocyte\n")
    (d / "split.csv").write_text("c0,train\nc1,test\n")
    res = add_dataset(
        "classy",
        f"{d}/img/*.png",
        f"{d}/cls/{{stem}}.png",
        kind="class",
        classes_file=d / "classes.yaml",
        split_from=d / "split.csv",
    )
    assert res["added"] == 2 and not res["bad"]
    cat = load_catalog()
    assert [c.name for c in cat.get("classy").classes] == ["tumour", "lymphocyte"]
    t = sample_table(cat, ["classy"])
    assert dict(zip(t["sample_id"], t["split"], strict=True)) == {"c0": "train", "c1": "test"}
    s = load_sample(cat, "classy", "c0")
    assert s.n_objects == 3 and sorted(s.classes.values()) == [1, 1, 2]
    # binary masks: connected components
    add_dataset("blobs", f"{d}/img/*.png", f"{d}/cls/{{stem}}.png", kind="binary")
    assert load_sample(load_catalog(), "blobs", "c1").n_objects == 3


def test_refusals_write_nothing(tmp_path):
    from cellbench.core import config
    from cellbench.data.user_data import add_dataset

    d = _folder(tmp_path, 2)
    with pytest.raises(CatalogError, match="catalog dataset"):
        add_dataset("monuseg", f"{d}/img/*.png", f"{d}/mask/{{stem}}.tif")
    with pytest.raises(CatalogError, match=r"must contain \{stem\}"):
        add_dataset("x", f"{d}/img/*.png", f"{d}/mask/a.tif")
    with pytest.raises(DataError, match="no image matches"):
        add_dataset("x", f"{d}/none/*.png", f"{d}/mask/{{stem}}.tif")
    with pytest.raises(DataError, match="no usable image / label pair"):
        add_dataset("x", f"{d}/img/*.png", f"{d}/nomask/{{stem}}.tif")
    with pytest.raises(DataError, match="missing.yaml: file not found"):
        add_dataset(
            "x",
            f"{d}/img/*.png",
            f"{d}/mask/{{stem}}.tif",
            kind="class",
            classes_file=d / "missing.yaml",
        )
    (d / "three.csv").write_text("s0,train,extra\n")
    with pytest.raises(DataError, match="three.csv: line 1: expected two columns"):
        add_dataset("x", f"{d}/img/*.png", f"{d}/mask/{{stem}}.tif", split_from=d / "three.csv")
    # pixel values without a class make a pair bad; here every pair, so nothing is added
    (d / "c.yaml").write_text("1: tumour\n")
    with pytest.raises(DataError, match=r"s0.tif: labels have pixel value\(s\) \[7\] without"):
        add_dataset(
            "x", f"{d}/img/*.png", f"{d}/mask/{{stem}}.tif", kind="class", classes_file=d / "c.yaml"
        )
    assert not config.user_catalog_path().exists()  # no refusal wrote the catalog
    root = config.user_data_root()
    assert not (root / "x").exists()
    assert not root.exists() or not [p for p in root.iterdir() if p.name.startswith(".")]
    add_dataset("once", f"{d}/img/*.png", f"{d}/mask/{{stem}}.tif")
    with pytest.raises(CatalogError, match="exists; remove it first"):
        add_dataset("once", f"{d}/img/*.png", f"{d}/mask/{{stem}}.tif")


def test_the_catalog_page_form_adds_and_removes(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "nodata"))
    d = _folder(tmp_path, 4)
    at = AppTest.from_file(str(repo / "pages" / "1_Catalog.py"), default_timeout=120).run()
    assert not [w for w in at.text_input if w.key == "a_id"]  # the form is built when asked for
    at.toggle(key="a_open").set_value(True).run()
    at.text_input(key="a_id").set_value("formed")
    at.text_input(key="a_images").set_value(f"{d}/img/*.png")
    at.text_input(key="a_labels").set_value(f"{d}/mask/{{stem}}.tif")
    next(b for b in at.button if b.label == "Add").click().run()
    # a folder outside the data root and the workspace is refused (issue 32 item 4) ...
    assert any("not inside the data root" in html.unescape(e.value) for e in at.error)
    # ... unless the app was started with it allowed
    monkeypatch.setenv("CELLBENCH_APP_PATHS", str(tmp_path))
    next(b for b in at.button if b.label == "Add").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Added 3 samples to 'formed' (1 left out)" in s.value for s in at.success)
    bad = next(d_.value for d_ in at.dataframe if "reason" in d_.value.columns)
    assert list(bad["file"]) == [f"{d}/mask/s3.tif"]
    assert "formed" in set(at.dataframe[0].value["id"])  # listed with the others
    at.selectbox(key="a_remove_id").set_value("formed")
    at.button(key="a_remove").click().run()
    assert not at.exception and "formed" not in set(at.dataframe[0].value["id"])


def test_per_image_mpp_from_a_table_or_the_tiff_header(tmp_path):
    """Issue 29: a user dataset of mixed magnification (CPM-15) gets each image's mpp."""
    from cellbench.data.catalog import load_catalog
    from cellbench.data.imageio import image_mpp
    from cellbench.data.samples import sample_table
    from cellbench.data.user_data import add_dataset

    d = _folder(tmp_path)
    # s2 as a TIFF whose header records 0.25 µm/px (4 px per 1e-4 cm: resolution unit cm)
    img = np.asarray(Image.open(d / "img" / "s2.png"))
    (d / "img" / "s2.png").unlink()
    tifffile.imwrite(
        d / "img" / "s2.tif", img, resolution=(40000, 40000), resolutionunit="CENTIMETER"
    )
    assert image_mpp(d / "img" / "s2.tif") == pytest.approx(0.25)
    tifffile.imwrite(
        d / "ij.tif", img[..., 0], imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron"}
    )
    assert image_mpp(d / "ij.tif") == pytest.approx(0.5)
    tifffile.imwrite(d / "inch.tif", img, resolution=(72, 72), resolutionunit="INCH")
    assert image_mpp(d / "inch.tif") is None  # an editor's default, not a scan's resolution
    (d / "mpp.csv").write_text("stem,mpp\ns0,0.5\n")
    add_dataset("mixed", f"{d}/img/*", f"{d}/mask/{{stem}}.tif", mpp=0.25, mpp_from=d / "mpp.csv")
    t = sample_table(load_catalog(), ["mixed"]).sort("sample_id")
    assert dict(zip(t["sample_id"], t["mpp"], strict=True)) == {"s0": 0.5, "s1": 0.25, "s2": 0.25}
    (d / "bad.csv").write_text("s0,fast\n")
    with pytest.raises(DataError, match=r"bad\.csv: mpp of 's0' is not a number"):
        add_dataset("x", f"{d}/img/*", f"{d}/mask/{{stem}}.tif", mpp_from=d / "bad.csv")
    (d / "other.csv").write_text("s9,0.5\n")
    with pytest.raises(DataError, match=r"other\.csv: names no image of the dataset: s9"):
        add_dataset("x", f"{d}/img/*", f"{d}/mask/{{stem}}.tif", mpp_from=d / "other.csv")


def test_evaluate_warns_when_the_data_does_not_suit_the_model(tmp_path):
    """mpp unknown or > 25 % off the model's, another modality: one warning line each, printed
    before the run and stored with it."""
    from conftest import tiny_checkpoint

    from cellbench.cli import app
    from cellbench.core import config
    from cellbench.models.calibration import domain_warnings, mpp_warnings
    from cellbench.runs.store import Store

    assert mpp_warnings("m", 0.25, [0.25, 0.26, None, 0.5, 0.5]) == [
        "the mpp of 1 of 5 images is unknown; model 'm' was trained at 0.25 µm/px: they are "
        "used as they are (give the dataset's mpp, or per image with `datasets add --mpp-from`)",
        "2 of 5 images are at 0.5 µm/px, more than 25% from model 'm''s 0.25 µm/px: they are "
        "resampled to it",
    ]
    assert mpp_warnings("m", None, [None]) == []
    d = _folder(tmp_path)
    tiny_checkpoint(config.home() / "models" / "tiny", training={"datasets": ["monuseg"]})
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "datasets",
            "add",
            "fluo",
            "--images",
            f"{d}/img/*.png",
            "--labels",
            f"{d}/mask/{{stem}}.tif",
            "--modality",
            "fluorescence",
            "--stain",
            "DAPI",
        ],
    )
    assert res.exit_code == 0, res.output
    from cellbench.data.catalog import load_catalog

    cat = load_catalog()
    if "monuseg" in cat.ids:
        card = type("C", (), {"id": "tiny", "train_datasets": ["monuseg"]})()
        got = domain_warnings(card, cat.get("fluo"), cat)
        assert got[0].startswith("model 'tiny' was trained on brightfield images (monuseg)")
        assert "'fluo' is stained DAPI" in got[1]
    res = runner.invoke(app, ["evaluate", "--dataset", "fluo", "--model", "tiny", "--limit", "1"])
    assert res.exit_code == 0, res.output
    assert "warning: the mpp of 1 of 1 images is unknown; model 'tiny'" in res.output
    run = Store().get_run(Store().runs().row(0, named=True)["run_id"])
    assert any("unknown" in w for w in run["warnings"])
