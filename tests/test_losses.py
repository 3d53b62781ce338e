"""Label-set-aware losses (seed 002 eqs. 2 and 4) and the HoVer-Net branch losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cellbench.data.catalog import ClassDef
from cellbench.models import losses

FINE = [
    ClassDef(id=1, name="other", nodes=["other"]),
    ClassDef(id=2, name="inflammatory", nodes=["inflammatory"]),
    ClassDef(id=3, name="epithelial", nodes=["neoplastic_epithelial", "non_neoplastic_epithelial"]),
    ClassDef(id=4, name="spindle", nodes=["connective"]),
]
NUCLEUS = [ClassDef(id=1, name="nucleus", nodes=["nucleus"])]
# a cut through two branches at different levels: epithelial kept, the rest merged
MIXED = [
    ClassDef(id=1, name="epithelial", nodes=["neoplastic_epithelial", "non_neoplastic_epithelial"]),
    ClassDef(id=2, name="non-epithelial", nodes=["other", "inflammatory", "connective"]),
]


def _logits(seed=0, n=2, c=4, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, requires_grad=True)


def test_label_groups_from_hierarchy():
    assert losses.label_groups(FINE, FINE).equal(torch.eye(4))
    assert losses.label_groups(FINE, NUCLEUS).equal(torch.ones(1, 4))
    assert losses.label_groups(FINE, MIXED).tolist() == [[0, 0, 1, 0], [1, 1, 0, 1]]


def test_label_groups_refuses_a_coarser_network():
    with pytest.raises(ValueError, match="straddles"):
        losses.label_groups(MIXED, FINE)


def test_ce_equals_ordinary_at_the_finest_level():
    z = _logits()
    t = torch.randint(0, 4, (2, 5, 6), generator=torch.Generator().manual_seed(1))
    t[0, 0, :3] = losses.IGNORE
    got = losses.hierarchical_ce(z, t, torch.eye(4))
    want = F.cross_entropy(z, t, ignore_index=losses.IGNORE)
    assert torch.allclose(got, want, atol=1e-6)


def _focal_tversky_eq3(z, t, alpha, gamma, eps=1e-6):
    y = z.softmax(1)
    valid = (t >= 0).unsqueeze(1)
    oh = F.one_hot(t.clamp(min=0), z.shape[1]).movedim(-1, 1) * valid
    y = y * valid
    out = []
    for i in range(z.shape[0]):
        num = (oh[i] * y[i]).reshape(z.shape[1], -1).sum(1).add(eps).sum()
        den = alpha * oh[i].sum() + (1 - alpha) * y[i].sum() + eps
        out.append((1 - num / den) ** gamma)
    return torch.stack(out).mean()


def _focal_tversky_abraham_khan(p, t, alpha, gamma, eps=1e-6):
    """Per class over the pixels, written out with loops (p: probabilities per label)."""
    out = []
    for i in range(p.shape[0]):
        per = []
        for k in range(p.shape[1]):
            tk = (t[i] == k).float()
            pk = p[i, k]
            tp = (tk * pk).sum()
            fn = (tk * (1 - pk)).sum()
            fp = ((1 - tk) * pk).sum()
            per.append((1 - (tp + eps) / (tp + alpha * fn + (1 - alpha) * fp + eps)) ** gamma)
        out.append(torch.stack(per).mean())
    return torch.stack(out).mean()


def test_literal_focal_tversky_is_the_printed_equation():
    z = _logits(2)
    t = torch.randint(0, 4, (2, 5, 6), generator=torch.Generator().manual_seed(3))
    got = losses.hierarchical_focal_tversky(z, t, torch.eye(4), 0.7, 0.75, form="literal")
    want = _focal_tversky_eq3(z, t, 0.7, 0.75)
    assert torch.allclose(got, want, atol=1e-6)


def test_focal_tversky_per_class_at_the_finest_level():
    z = _logits(2)
    t = torch.randint(0, 4, (2, 5, 6), generator=torch.Generator().manual_seed(3))
    got = losses.hierarchical_focal_tversky(z, t, torch.eye(4), alpha=0.7, gamma=0.75)
    want = _focal_tversky_abraham_khan(z.softmax(1), t, 0.7, 0.75)
    assert torch.allclose(got, want, atol=1e-6)


def test_focal_tversky_per_class_on_a_coarse_label_set_sums_subclass_probabilities():
    z = _logits(9)
    groups = losses.label_groups(FINE, MIXED)
    t = torch.randint(0, 2, (2, 5, 6), generator=torch.Generator().manual_seed(10))
    p = z.softmax(1)
    coarse = torch.stack([p[:, 2], p[:, 0] + p[:, 1] + p[:, 3]], 1)
    got = losses.hierarchical_focal_tversky(z, t, groups, alpha=0.3, gamma=0.75)
    assert torch.allclose(got, _focal_tversky_abraham_khan(coarse, t, 0.3, 0.75), atol=1e-6)


def test_alpha_changes_the_focal_tversky_loss():
    """The printed form ignores alpha when the labels cover every class; the per-class one
    does not (alpha trades false negatives against false positives)."""
    z = _logits(11)
    t = torch.randint(0, 4, (2, 5, 6), generator=torch.Generator().manual_seed(12))
    eye = torch.eye(4)
    per = [losses.hierarchical_focal_tversky(z, t, eye, a).item() for a in (0.1, 0.5, 0.9)]
    lit = [
        losses.hierarchical_focal_tversky(z, t, eye, a, form="literal").item()
        for a in (0.1, 0.5, 0.9)
    ]
    assert len({round(v, 6) for v in per}) == 3
    assert max(lit) - min(lit) < 1e-6
    with pytest.raises(ValueError, match="unknown focal Tversky form"):
        losses.hierarchical_focal_tversky(z, t, eye, form="nope")


@pytest.mark.parametrize("loss", ["ce", "ft"])
def test_gradient_reaches_every_subclass_of_a_labelled_superclass(loss):
    z = _logits(4)
    groups = losses.label_groups(FINE, MIXED)
    t = torch.full((2, 5, 6), losses.IGNORE)
    t[:, 1:3, 1:4] = 1  # only "non-epithelial" (other + inflammatory + spindle) is labelled
    fn = losses.hierarchical_ce if loss == "ce" else losses.hierarchical_focal_tversky
    fn(z, t, groups).backward()
    g = z.grad[:, :, 1:3, 1:4]
    for j in (0, 1, 3):  # every sub-class of the labelled super-class gets a gradient
        assert g[:, j].abs().min() > 0
    # unlabelled pixels get none
    assert z.grad[:, :, 0].abs().max() == 0


def test_coarse_loss_is_the_loss_of_summed_probabilities():
    z = _logits(5)
    groups = losses.label_groups(FINE, MIXED)
    t = torch.randint(0, 2, (2, 5, 6), generator=torch.Generator().manual_seed(6))
    p = z.softmax(1)
    coarse = torch.stack([p[:, 2], p[:, 0] + p[:, 1] + p[:, 3]], 1)
    want = F.nll_loss(coarse.log(), t)
    assert torch.allclose(losses.hierarchical_ce(z, t, groups), want, atol=1e-6)


def test_root_level_labels_give_a_constant_type_loss():
    z = _logits(7)
    t = torch.zeros(2, 5, 6, dtype=torch.long)
    ce = losses.hierarchical_ce(z, t, losses.label_groups(FINE, NUCLEUS))
    ft = losses.hierarchical_focal_tversky(z, t, losses.label_groups(FINE, NUCLEUS))
    (ce + ft).backward()
    assert float(ce.detach()) == pytest.approx(0, abs=1e-6)
    assert torch.isfinite(z.grad).all() and z.grad.abs().max() < 1e-5


def test_no_labelled_pixels_gives_zero_and_finite_gradient():
    z = _logits(8)
    t = torch.full((2, 5, 6), losses.IGNORE)
    total = losses.hierarchical_ce(z, t, torch.eye(4)) + losses.hierarchical_focal_tversky(
        z, t, torch.eye(4)
    )
    total.backward()
    assert float(total.detach()) == 0 and torch.isfinite(z.grad).all()


def test_hv_loss_zero_on_perfect_prediction_and_positive_otherwise():
    from cellbench.models.postprocess import hv_targets

    inst = torch.zeros(32, 32, dtype=torch.int32)
    inst[4:14, 5:15] = 1
    inst[18:28, 10:24] = 2
    h, v = hv_targets(inst.numpy())
    target = torch.from_numpy(__import__("numpy").stack([h, v]))[None]
    fg = (inst > 0).float()[None]
    mse, msge = losses.hv_loss(target, target, fg)
    assert float(mse) == 0 and float(msge) == 0
    mse, msge = losses.hv_loss(torch.zeros_like(target), target, fg)
    assert float(mse) > 0 and float(msge) > 0


def test_dice_loss_bounds():
    t = torch.zeros(1, 8, 8)
    t[0, 2:6, 2:6] = 1
    assert float(losses.dice_loss(torch.where(t > 0, 20.0, -20.0), t)) < 1e-3
    assert float(losses.dice_loss(torch.where(t > 0, -20.0, 20.0), t)) > 0.99
