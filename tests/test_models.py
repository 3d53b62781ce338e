"""Model cards, registry, backends, tiled inference and post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_checkpoint

from cellbench.core.errors import DataError
from cellbench.metrics import instance_scores
from cellbench.models import postprocess as pp
from cellbench.models.card import load_card, parse_card
from cellbench.models.inference import Predictor, normalize, tiled_forward, to_channels
from cellbench.models.registry import (
    card_from_bioimageio,
    get_model,
    list_models,
    load_predictor,
    model_row,
    user_dir,
)
from cellbench.runs.synthetic import random_instances

# -- cards ------------------------------------------------------------------------------------


def _card(**over):
    base = {
        "id": "m",
        "name": "m",
        "kind": "torchscript",
        "weights": {"file": "w.pt", "sha256": "0" * 64},
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"kind": "keras"}, "kind"),
        ({"weights": {"file": "w.pt", "sha256": "xyz"}}, "weights.sha256"),
        ({"kind": "cellbench"}, "needs 'architecture'"),
        ({"kind": "cellbench", "architecture": "resnet"}, "unknown architecture 'resnet'"),
        ({"output": {"kind": "hovernet", "n_types": 2}}, "n_types = 2 but 0 classes"),
        ({"unexpected": 1}, "unexpected"),
        ({"input": {"normalization": "mean_std"}}, "needs 3 'mean'"),
    ],
)
def test_invalid_cards_name_the_file_and_field(tmp_path, over, needle):
    p = tmp_path / "card.yaml"
    p.write_text(yaml.safe_dump(_card(**over)))
    with pytest.raises(DataError) as e:
        load_card(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_malformed_card_yaml(tmp_path):
    p = tmp_path / "card.yaml"
    p.write_text("id: [unclosed")
    with pytest.raises(DataError, match="malformed YAML"):
        load_card(p)


def test_bioimageio_model_of_the_data_root_is_registered_from_its_facts(
    data_env, tmp_path, monkeypatch
):
    """The real model's cards are generated from its bioimageio.yaml, read where it lies."""
    rdf = data_env / "models/unet2d_nuclei_broad/bioimageio.yaml"
    for kind in ("torchscript", "onnx"):
        got = get_model(f"unet2d_nuclei_broad_{kind}")
        assert got.card == parse_card(card_from_bioimageio(rdf, kind)).card
        assert got.path == rdf.resolve() and got.weights_path.is_file()
        assert got.weights.file.startswith("data:models/unet2d_nuclei_broad/")
    assert got.input.normalization == "zero_mean_unit_variance"
    assert got.output.activation == "sigmoid" and got.input.halo == 32
    assert model_row(got)["source"] == "data root (bioimage.io)"
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path))  # no data: no such model
    assert not any(c.id.startswith("unet2d") for c in list_models())


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_bioimageio_model_reproduces_its_test_output(data_env, kind):
    """test_input.npy through the whole predictor (normalise, tile, sigmoid) = test_output.npy."""
    d = data_env / "models/unet2d_nuclei_broad"
    x = np.load(d / "test_input.npy")[0, 0]
    y = np.load(d / "test_output.npy")[0, 0]
    pred = load_predictor(f"unet2d_nuclei_broad_{kind}")
    out = pred.output_maps(x)
    assert out.shape == (1, 512, 512)
    np.testing.assert_allclose(out[0], y, atol=1e-5)


def test_sha256_mismatch_and_corrupted_checkpoint(tmp_path):
    card = tiny_checkpoint(user_dir() / "tiny")
    w = card.weights_path
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 mismatch") as e:
        load_predictor("tiny")
    assert str(w) in str(e.value)
    # a card that names the corrupted file's own hash: the file itself cannot be loaded
    w.write_bytes(b"not a torch file")
    from cellbench.models.backends import sha256_file

    text = card.path.read_text().replace(card.weights.sha256, sha256_file(w))
    card.path.write_text(text)
    with pytest.raises(DataError, match="cannot load checkpoint"):
        load_predictor("tiny")


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    card = tiny_checkpoint(user_dir() / "tiny")
    text = card.path.read_text().replace("base: 8", "base: 16")
    card.path.write_text(text)
    with pytest.raises(DataError, match="do not fit architecture 'hovernet_lite'"):
        load_predictor("tiny")


def test_duplicate_model_ids_are_refused(tmp_path):
    from cellbench.models.registry import scan_models

    tiny_checkpoint(user_dir() / "a", model_id="same")
    tiny_checkpoint(user_dir() / "b", model_id="same")
    cards, problems = scan_models()
    assert [c.path.parent.name for c in cards if c.id == "same"] == ["a"]
    assert len(problems) == 1 and "also defined" in str(problems[0])
    assert problems[0].path.parent.name == "b"


def test_unknown_model_lists_known_ids():
    with pytest.raises(KeyError, match="no model 'nope'"):
        get_model("nope")


# -- built-in architecture and inference ------------------------------------------------------


def test_builtin_checkpoint_runs_deterministically_on_cpu():
    tiny_checkpoint(
        user_dir() / "tiny",
        n_types=3,
        classes=[
            {"id": 1, "name": "epithelial", "nodes": ["epithelial"]},
            {"id": 2, "name": "inflammatory", "nodes": ["inflammatory"]},
            {"id": 3, "name": "connective", "nodes": ["connective"]},
        ],
    )
    pred = load_predictor("tiny")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    a = pred.output_maps(img, 0.25)
    b = pred.output_maps(img, 0.25)
    assert a.shape == (6, 200, 300)
    assert np.array_equal(a, b)
    assert np.all((a[0] >= 0) & (a[0] <= 1))
    np.testing.assert_allclose(a[3:].sum(0), 1.0, atol=1e-5)  # softmax over types
    inst = pred.predict(img, 0.25)
    assert inst.labels.shape == (200, 300) and inst.labels.dtype == np.int32
    assert set(inst.scores) == set(np.unique(inst.labels[inst.labels > 0]).tolist())


class _Conv:
    """A backend with a 5x5 receptive field and a record of the tiles it saw."""

    def __init__(self, fixed_tile=None, max_batch=None):
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 2, 5, padding=2)
        self.fixed_tile = fixed_tile
        self.max_batch = max_batch
        self.shapes = []

    def __call__(self, x):
        self.shapes.append(x.shape)
        with torch.no_grad():
            return self.conv(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"), [(300, 410, 128, 16), (100, 90, 128, 16), (257, 257, 64, 8)]
)
def test_tiled_forward_equals_whole_image_forward(h, w, tile, overlap):
    """With a halo wider than the receptive field, blending reproduces the untiled output."""
    rng = np.random.default_rng(0)
    x = rng.random((3, h, w), dtype=np.float32)
    be = _Conv()
    whole = be(x[None])[0]
    tiled = tiled_forward(be, x, tile, overlap, batch_size=4)
    assert tiled.shape == (2, h, w)
    inner = (slice(None), slice(2, -2), slice(2, -2))  # reflect padding differs at the border
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)
    assert all(s[0] <= 4 for s in be.shapes[1:])


def test_fixed_shape_models_get_exactly_their_shape():
    x = np.random.default_rng(0).random((3, 100, 150), dtype=np.float32)
    be = _Conv(fixed_tile=64, max_batch=1)
    out = tiled_forward(be, x, 64, 8, batch_size=1, fixed_shape=True)
    assert out.shape == (2, 100, 150)
    assert {s for s in be.shapes} == {(1, 3, 64, 64)}


def test_mpp_rescaling_runs_the_model_at_its_resolution():
    card = tiny_checkpoint(user_dir() / "tiny")
    be = _Conv()
    be.conv = torch.nn.Conv2d(3, 3, 1)
    pred = Predictor(card, be, batch_size=64)
    img = np.zeros((100, 120, 3), np.uint8)
    pred.output_maps(img, mpp=0.5)  # model at 0.25 um/px: twice the pixels
    assert sum(s[0] for s in be.shapes) >= 1 and max(s[2] for s in be.shapes) == 128
    n_pixels = sum(s[0] * s[2] * s[3] for s in be.shapes)
    assert n_pixels >= 200 * 240
    be.shapes.clear()
    pred.output_maps(img, mpp=0.2525)  # within 2 %: no resizing
    assert max(s[2] for s in be.shapes) <= 104
    inst = pred.predict(img, mpp=0.5)
    assert inst.labels.shape == (100, 120)


def test_channels_and_normalisation():
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3)).astype(np.uint8)
    assert to_channels(rgb, "rgb").shape == (3, 10, 12)
    g = to_channels(rgb, "gray")
    np.testing.assert_allclose(g[0], rgb @ np.array([0.299, 0.587, 0.114]), rtol=1e-5)
    assert to_channels(rgb[..., 0], "rgb").shape == (3, 10, 12)
    card = parse_card(_card(input={"normalization": "zero_mean_unit_variance"}))
    z = normalize(g, card.input)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-4
    card = parse_card(
        _card(input={"normalization": "mean_std", "mean": [10, 20, 30], "std": [2, 4, 5]})
    )
    n = normalize(to_channels(rgb, "rgb"), card.input)
    np.testing.assert_allclose(n[1], (rgb[..., 1].astype(float) - 20) / 4, rtol=1e-6)


# -- post-processing --------------------------------------------------------------------------


def test_hv_targets_span_minus_one_to_one_per_nucleus():
    inst = random_instances((128, 128), 25, seed=3)
    h, v = pp.hv_targets(inst)
    for i in np.unique(inst[inst > 0]):
        m = inst == i
        if m.sum() > 4:
            assert h[m].min() == -1 and h[m].max() == 1 and v[m].min() == -1
    assert np.all(h[inst == 0] == 0)
    rr, cc = np.nonzero(inst == np.unique(inst[inst > 0])[0])
    assert np.all(np.diff(h[rr[rr == rr[0]], cc[rr == rr[0]]]) >= 0)  # increases along a row


def test_hovernet_watershed_recovers_touching_nuclei_from_ideal_maps():
    """Ideal network outputs (GT foreground and h/v maps) give back the instances."""
    inst = random_instances((256, 256), 60, seed=5, overlap=True)
    h, v = pp.hv_targets(inst)
    labels = pp.hovernet_instances((inst > 0).astype(np.float32), h, v)
    s = instance_scores(inst, labels)
    assert s["pq"] > 0.85 and s["f1"] > 0.9
    # connected components merge touching nuclei, the watershed does not
    cc = pp.connected_components((inst > 0).astype(np.float32))
    assert cc.max() < labels.max()


def test_distance_watershed_splits_two_touching_discs():
    yy, xx = np.mgrid[:60, :100]
    a = (yy - 30) ** 2 + (xx - 35) ** 2 < 15**2
    b = (yy - 30) ** 2 + (xx - 62) ** 2 < 15**2
    prob = (a | b).astype(np.float32)
    assert pp.connected_components(prob).max() == 1
    lab = pp.distance_watershed(prob, min_distance=5)
    assert lab.max() == 2
    assert lab[30, 30] != lab[30, 68]


def test_instance_types_majority_and_scores():
    labels = np.zeros((4, 6), np.int32)
    labels[:, :3] = 1
    labels[:, 3:] = 2
    tp = np.zeros((3, 4, 6), np.float32)
    tp[0, :, :2] = 1  # instance 1: 8 pixels type 1, 4 pixels type 3
    tp[2, :, 2:] = 1
    assert pp.instance_types(labels, tp) == {1: 1, 2: 3}
    prob = np.where(labels == 1, 0.9, 0.6).astype(np.float32)
    sc = pp.instance_scores(labels, prob)
    assert sc[1] == pytest.approx(0.9) and sc[2] == pytest.approx(0.6)
    assert pp.remove_small(labels, 13).max() == 0
    assert pp.remove_small(labels, 12).max() == 2


def test_predict_many_with_worker_processes_equals_predict():
    tiny_checkpoint(user_dir() / "tiny", seed=1)  # these random weights do segment "nuclei"
    pred = load_predictor("tiny")
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 255, (96, 80 + 16 * k, 3), dtype=np.uint8) for k in range(3)]
    one = [pred.predict(i, 0.5) for i in imgs]
    many = list(pred.predict_many(imgs, [0.5] * 3, workers=2))
    assert [m.labels.shape for m in many] == [(96, 80), (96, 96), (96, 112)]
    assert one[-1].labels.max() > 10
    for a, b in zip(one, many, strict=True):
        assert np.array_equal(a.labels, b.labels) and a.scores == b.scores


def test_predict_region_of_a_whole_slide_at_the_model_mpp(shared_data):
    from cellbench.data.wsi import open_slide

    tiny_checkpoint(user_dir() / "tiny", seed=1)
    pred = load_predictor("tiny")
    with open_slide(shared_data / "wsi/small_HE.svs") as slide:  # 0.499 um/px
        inst = pred.predict_region(slide, 600, 800, 96, 64)  # 96x64 px at 0.25 um/px
    assert inst.labels.shape == (64, 96)


def test_postprocess_on_the_image_grid(tmp_path):
    """``postprocess.grid: image`` upsamples the maps of a coarser model before the watershed."""
    import numpy as np

    from cellbench.models.registry import load_predictor

    img = np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)
    for grid, shape in (("model", (48, 40)), ("image", (96, 80))):
        card = tiny_checkpoint(
            tmp_path / grid,
            input={"channels": "rgb", "mpp": 0.5, "tile": 64, "halo": 8, "multiple_of": 8},
            postprocess={"method": "hovernet", "grid": grid},
        )
        pred = load_predictor(card)
        assert pred.maps_for_postprocess(img, mpp=0.25).shape[1:] == shape
        assert pred.predict(img, mpp=0.25).labels.shape == (96, 80)


def test_compiled_network_gives_the_eager_outputs(tmp_path, monkeypatch):
    """``compile`` wraps the network in torch.compile (here with the quick ``eager`` backend:
    the wiring, not inductor's kernels, is what is tested on CPU)."""
    from conftest import tiny_checkpoint

    from cellbench.models import backends
    from cellbench.models.registry import load_predictor

    monkeypatch.setattr(backends, "COMPILE_BACKEND", "eager")
    card = tiny_checkpoint(tmp_path / "tiny")
    img = np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)
    plain = load_predictor(card)
    fast = load_predictor(card, compile=True)
    assert fast.backend.compiled and not plain.backend.compiled
    np.testing.assert_allclose(fast.output_maps(img), plain.output_maps(img), atol=1e-5)


@pytest.mark.parametrize("seed", range(8))
def test_split_watershed_equals_the_full_image_watershed(seed):
    """Flooding only the blobs with two or more marker ids, each on its crop, gives exactly
    skimage's full-image watershed on continuous images (as post-processing floods; exact
    ties between competing fronts are the documented exception), diagonal-only contacts and
    markers sharing an id included."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from cellbench.models.postprocess import split_watershed

    rng = np.random.default_rng(seed)
    shape = (90, 110)
    img = ndi.gaussian_filter(rng.random(shape), 1.5).astype(np.float32)
    mask = ndi.binary_dilation(rng.random(shape) > 0.75)
    mask[::7, :] = False  # diagonal-only and separated pieces
    markers = np.zeros(shape, np.int32)
    pts = rng.integers(0, shape[0], (30, 2))
    markers[pts[:, 0], pts[:, 1] % shape[1]] = rng.integers(1, 12, 30)  # repeated ids too
    markers[~mask] = 0
    # a marker region outside the mask (binary_fill_holes of the markers makes them): skimage
    # labels nothing there, and nothing else through it
    out = np.flatnonzero(~mask.ravel())[:5]
    markers.ravel()[out] = 99
    assert np.array_equal(split_watershed(img, markers, mask), watershed(img, markers, mask=mask))


# -- models whose output is already instances (issue 29 item 2) --------------------------------


class _BlockInstances(torch.nn.Module):
    """A stand-in for an exported InstanSeg / Cellpose network: bright pixels, split into
    16 x 16 blocks of the tile, each block one instance (ids counted from the tile's corner),
    and a class channel (1 left of column 32 of the tile, 2 right of it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        fg = (x.mean(dim=1, keepdim=True) > 0.5).float()
        rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1) // 16
        cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w) // 16
        ids = (rows * 1000 + cols + 1) * fg
        cls = torch.where(cols < 2, 1.0, 2.0).expand(b, 1, h, w) * fg
        return torch.cat([ids, cls], dim=1)


def _instance_card(tmp_path, **over):
    from cellbench.models.backends import sha256_file
    from cellbench.models.registry import write_card

    torch.jit.save(torch.jit.script(_BlockInstances()), tmp_path / "inst.pt")
    card = {
        "id": "blocks",
        "name": "instances as is",
        "kind": "torchscript",
        "weights": {"file": "inst.pt", "sha256": sha256_file(tmp_path / "inst.pt")},
        "input": {"channels": "rgb", "normalization": "scale_unit", "tile": 64, "halo": 16},
        "output": {"kind": "instances", "activation": "none"},
        "classes": [
            {"id": 1, "name": "left", "nodes": ["nucleus"]},
            {"id": 2, "name": "right", "nodes": ["nucleus"]},
        ],
        "postprocess": {"method": "none"},
    }
    card.update(over)
    return write_card(card, tmp_path)


def test_a_model_that_outputs_instances_is_taken_as_is_and_stitched_over_tiles(tmp_path):
    from cellbench.models.backends import load_backend

    card = _instance_card(tmp_path)
    img = np.zeros((112, 160, 3), np.uint8)
    img[5:105, 5:150] = 255  # one bright region: many 16 x 16 blocks, cut by the tile grid
    pred = Predictor(card, load_backend(card), batch_size=4)
    inst = pred.predict(img)
    # the same model on the whole image in one call (tiles of 64 with a 16 px halo start at
    # 0, 48 (, 96): multiples of the block size, so every block is whole in the tile that
    # keeps it)
    whole = _BlockInstances()(torch.from_numpy(img.transpose(2, 0, 1)[None] / 255.0).float())
    ids = whole[0, 0].numpy().astype(np.int64)
    ref = pp.relabel(ids.astype(np.int32))
    got = sorted(tuple(np.flatnonzero(inst.labels == i)) for i in np.unique(inst.labels) if i)
    want = sorted(tuple(np.flatnonzero(ref == i)) for i in np.unique(ref) if i)
    assert got == want and len(got) == len(np.unique(ids)) - 1
    assert set(inst.classes.values()) == {1, 2} and inst.scores == {}
    # a single tile keeps the model's ids in order
    small = pred.predict(img[:60, :60])
    assert small.labels.max() == len(np.unique(small.labels)) - 1


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"postprocess": {"method": "hovernet"}}, "goes with postprocess.method 'none'"),
        ({"output": {"kind": "instances"}}, "activation 'none'"),
        ({"output": {"kind": "foreground"}}, "goes with postprocess.method 'none'"),
    ],
)
def test_instance_cards_that_cannot_work_are_refused(tmp_path, over, needle):
    with pytest.raises(DataError, match=needle):
        _instance_card(tmp_path, **over)


def test_hovernet_postprocessing_needs_hv_maps():
    """Issue 33: such a card passed `models verify` and then failed in evaluate."""
    with pytest.raises(DataError, match="needs h/v maps"):
        parse_card(_card(output={"kind": "foreground"}, postprocess={"method": "hovernet"}))


# -- the CPU backend (issue 30 item 3) ----------------------------------------------------------


def test_the_onnx_cpu_backend_gives_torchs_outputs_and_nuclei(tmp_path, data_env, catalog):
    """cellbench's networks run on ONNX Runtime on the CPU (a checked, cached export): outputs
    within 1e-4 of torch's, and on a real MoNuSeg tile the same nuclei."""
    from cellbench.data.samples import iter_samples
    from cellbench.models.backends import OnnxBackend, TorchBackend
    from cellbench.models.export import export_path
    from cellbench.models.registry import get_model, load_predictor

    card = get_model("cb_monuseg")
    onnx = load_predictor(card)
    assert isinstance(onnx.backend, OnnxBackend) and export_path(card).is_file()
    from cellbench.models.card import LoadedCard

    eager = load_predictor(
        LoadedCard(card.card.model_copy(update={"cpu_backend": "torch"}), card.path)
    )
    assert isinstance(eager.backend, TorchBackend)
    _, s = next(iter(iter_samples(catalog, "monuseg", "test")))
    img = s.image[:384, :384]
    a, b = onnx.output_maps(img, s.meta.get("mpp")), eager.output_maps(img, s.meta.get("mpp"))
    assert np.abs(a - b).max() < 1e-4
    na, nb = onnx.predict(img, s.meta.get("mpp")), eager.predict(img, s.meta.get("mpp"))
    r = instance_scores(nb.labels, na.labels, "hovernet")
    assert r["pq"] == pytest.approx(1.0, abs=1e-5) and r["fp"] == r["fn"] == 0
