"""Splits that keep centers whole, and training end to end on a few real patches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cellbench.core.errors import DataError
from cellbench.data.splits import center_held_out, group_holdout


def _metas(n_centers=10, per=3):
    return [
        {"sample_id": f"s{c}_{k}", "center": f"C{c}", "patient_id": f"p{c}_{k // 2}"}
        for c in range(n_centers)
        for k in range(per)
    ]


def test_center_held_out_is_six_two_two_and_keeps_centers_whole():
    cs = center_held_out(_metas())
    assert [len(cs.centers[p]) for p in ("train", "val", "test")] == [6, 2, 2]
    assert len(cs.train) == 18 and len(cs.val) == 6 and len(cs.test) == 6
    for p in ("train", "val", "test"):
        assert {s.split("_")[0][1:] for s in cs.part(p)} == {c[1:] for c in cs.centers[p]}
    assert not set(cs.centers["train"]) & set(cs.centers["test"])
    assert center_held_out(_metas(), seed=0) == cs
    assert center_held_out(_metas(), seed=1) != cs


def test_center_held_out_refuses_samples_without_center():
    metas = _metas()
    metas[4]["center"] = None
    with pytest.raises(ValueError, match="no center"):
        center_held_out(metas)


def test_group_holdout_keeps_patients_whole():
    keep, held = group_holdout(_metas(), fraction=0.2, seed=3)
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == 30
    pat = {m["sample_id"]: m["patient_id"] for m in _metas()}
    assert not {pat[s] for s in keep} & {pat[s] for s in held}


CONFIG = {
    "id": "tiny_fused",
    "name": "tiny",
    "kwargs": {"base": 4, "depth": 2},
    "mpp": 0.5,
    "patch": 64,
    "tile": 128,
    "classes": [
        {"id": 1, "name": "other", "nodes": ["other"]},
        {"id": 2, "name": "inflammatory", "nodes": ["inflammatory"]},
        {
            "id": 3,
            "name": "epithelial",
            "nodes": ["neoplastic_epithelial", "non_neoplastic_epithelial"],
        },
        {"id": 4, "name": "spindle-shaped", "nodes": ["connective"]},
    ],
    "data": [
        {"dataset": "consep", "samples": ["train_1_000", "train_1_001", "train_2_000"]},
        {"dataset": "cryonuseg", "split": None},
    ],
    "validation": {"fraction": 0.4},
    "optim": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2},
}


def test_train_writes_a_loadable_checkpoint_with_card_config_and_log(data_env, tmp_path):
    from cellbench.models.card import load_card
    from cellbench.models.registry import load_predictor
    from cellbench.models.train import TrainConfig, load_config, train

    cfg = TrainConfig.model_validate(CONFIG)
    out = tmp_path / "ckpt"
    card_path = train(cfg, out)
    card = load_card(card_path)
    assert card.output.n_types == 4 and card.input.mpp == 0.5
    assert card.training.datasets == ["consep", "cryonuseg"]
    assert set(card.training.metrics) >= {"val_segmentation_loss", "val_pq", "val_aji"}
    assert json.loads(card.training.splits["consep"])["val_samples"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(np.isfinite(r["val_loss"]) and np.isfinite(r["train_type_ce"]) for r in log)
    # the committed config reproduces the run exactly (CPU is deterministic)
    again = train(load_config(out / "config.yaml"), tmp_path / "again")
    assert load_card(again).weights.sha256 == card.weights.sha256
    pred = load_predictor(card).predict(np.zeros((100, 90, 3), np.uint8) + 200, mpp=0.25)
    assert pred.labels.shape == (100, 90)


def test_fine_tune_keeps_layers_and_refuses_other_architectures(data_env, tmp_path, monkeypatch):
    from cellbench.models.train import TrainConfig, train

    pre = train(
        TrainConfig.model_validate({**CONFIG, "data": CONFIG["data"][:1]}), tmp_path / "pre"
    )
    ft = {
        **CONFIG,
        "id": "tiny_ft",
        "init": str(pre),
        "data": [{"dataset": "cryonuseg", "split": None}],
        "validation": {"fraction": 0.5},
    }
    card = yaml.safe_load(train(TrainConfig.model_validate(ft), tmp_path / "ft").read_text())
    assert "initialised from 'tiny_fused'" in card["training"]["notes"]
    assert card["training"]["label"] == "consep>cryonuseg"
    bad = {**ft, "kwargs": {"base": 8, "depth": 2}}
    with pytest.raises(DataError, match="does not fit"):
        train(TrainConfig.model_validate(bad), tmp_path / "bad")


def test_train_cli_names_the_config_file_on_bad_input(tmp_path):
    from cellbench.cli import app

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "optim": {"epochs": 0}}))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 2
    assert "bad.yaml" in res.output and "optim.epochs" in res.output


def test_splits_cli_on_monuseg_centers(data_env):
    from cellbench.cli import app

    res = CliRunner().invoke(app, ["splits", "centers", "--dataset", "monuseg", "--json"])
    assert res.exit_code == 0, res.output
    parts = json.loads(res.output)
    assert sum(len(p["samples"]) for p in parts.values()) == 27
    assert len(parts["test"]["centers"]) == 5


def test_unet_family_trains_the_foreground_and_splits_by_distance_watershed(data_env, tmp_path):
    """The second built-in family (issue 31 item 6): a plain U-Net, foreground only, its
    nuclei split by a distance-transform watershed; a family of its own in comparisons."""
    from cellbench.models.card import load_card
    from cellbench.models.registry import load_predictor
    from cellbench.models.train import TrainConfig, train

    cfg = {
        **CONFIG,
        "id": "tiny_unet",
        "architecture": "unet_lite",
        "classes": [],
        "postprocess": {"method": "distance_watershed", "grid": "image", "min_distance": 4},
    }
    card = load_card(train(TrainConfig.model_validate(cfg), tmp_path / "u"))
    assert card.architecture == "unet_lite" and card.family == "unet_lite"
    assert card.output.kind == "foreground" and card.output.n_types == 0
    log = [json.loads(x) for x in (tmp_path / "u" / "train_log.jsonl").read_text().splitlines()]
    assert "train_hv_mse" not in log[0] and np.isfinite(log[-1]["val_segmentation"])
    pred = load_predictor(card).predict(np.zeros((100, 90, 3), np.uint8) + 200, mpp=0.25)
    assert pred.labels.shape == (100, 90)
    with pytest.raises(ValueError, match="foreground only"):
        TrainConfig.model_validate({**cfg, "classes": CONFIG["classes"]})
    with pytest.raises(ValueError, match="no h/v maps"):
        TrainConfig.model_validate({**cfg, "postprocess": {"method": "hovernet"}})


def test_stain_normalisation_is_fitted_recorded_and_applied_at_inference(
    data_env, tmp_path, monkeypatch
):
    """Issue 31 item 7: Macenko / Reinhard (torchstain) as a card's preprocessing step: fitted
    to the config's target image in training, recorded in the card, applied by the predictor
    to every image it segments; blank images are left as they are and counted."""
    from cellbench.models import stain
    from cellbench.models.card import load_card
    from cellbench.models.registry import load_predictor
    from cellbench.models.train import TrainConfig, train

    cfg = {
        **CONFIG,
        "id": "tiny_reinhard",
        "classes": [],
        "stain": {"method": "reinhard", "target": "consep/train_1_000"},
    }
    card = load_card(train(TrainConfig.model_validate(cfg), tmp_path / "r"))
    st = card.input.stain
    assert st.method == "reinhard" and st.target == "consep/train_1_000"
    assert len(st.params["means"]) == 3 and len(st.params["stds"]) == 3
    pred = load_predictor(card)
    seen = []
    real = stain.Normalizer.__call__
    monkeypatch.setattr(stain.Normalizer, "__call__", lambda n, im: seen.append(1) or real(n, im))
    img = (np.random.default_rng(0).random((96, 80, 3)) * 255).astype(np.uint8)
    assert pred.predict(img, mpp=0.5).labels.shape == (96, 80) and seen == [1]
    # Macenko with torchstain's reference; a blank tile is left alone and counted
    mac = stain.Normalizer(stain.StainSpec(method="macenko"))
    blank = np.full((32, 32, 3), 245, np.uint8)
    assert np.array_equal(mac(blank), blank) and mac.skipped == 1
    with pytest.raises(ValueError, match="needs a target"):
        TrainConfig.model_validate({**cfg, "stain": {"method": "reinhard"}})


@pytest.mark.parametrize(
    "stain, match",
    [
        ({"method": "vahadane"}, "Input should be"),
        ({"method": "macenko", "params": {"HERef": [[1]], "maxCRef": [1]}}, r"\(3, 2\) finite"),
        (
            {
                "method": "macenko",
                "params": {"HERef": [[1, 2], [3, 4], [5, None]], "maxCRef": [1, 2]},
            },
            "HERef",
        ),
        ({"method": "reinhard", "params": {"means": [1, 2, 3]}}, r"are \['means', 'stds'\]"),
        ({"method": "reinhard", "target": "no_slash"}, "dataset/sample_id"),
    ],
)
def test_malformed_stain_settings_are_refused_by_field(stain, match):
    """A config or card's stain section: one message naming the field, nothing trained."""
    from cellbench.models.train import TrainConfig

    with pytest.raises(ValueError, match=match):
        TrainConfig.model_validate({**CONFIG, "classes": [], "stain": stain})


@pytest.mark.parametrize("target", ["../../etc/passwd", "consep/<b>..</b>", "tiger/x"])
def test_a_stain_target_that_is_not_a_local_sample_is_named(data_env, tmp_path, target):
    from cellbench.core.errors import CellbenchError
    from cellbench.models.train import TrainConfig, train

    cfg = TrainConfig.model_validate(
        {**CONFIG, "classes": [], "stain": {"method": "reinhard", "target": target}}
    )
    with pytest.raises(CellbenchError, match=r"stain target '.*': no (local dataset|sample)"):
        train(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
