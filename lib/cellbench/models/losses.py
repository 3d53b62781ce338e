"""Training losses, including the label-set-aware losses of seed 002 (torch only).

Label sets at different levels of one class hierarchy (seed 002, ``shared/DESIGN.md`` §4)
-------------------------------------------------------------------------------------------
A network predicts ``c`` classes at the finest level it knows (its type head, softmax
``y_ij``). A dataset labelled at a coarser level has ``m`` classes; its class ``k`` stands for
the set ``S_k`` of network classes below it (:func:`label_groups` builds the ``(m, c)``
membership matrix from the class hierarchy). The probability of class ``k`` is the sum of its
sub-classes' probabilities, ``y_ik = sum_{j in S_k} y_ij``, and the losses are computed on
those sums:

- modified cross-entropy, seed 002 eq. 2:
  ``L_MCE = - sum_i sum_k t_ik log(sum_{j in S_k} y_ij)``, computed stably as
  ``logsumexp(z_{S_k}) - logsumexp(z)`` of the logits ``z``; returned as the mean over
  labelled pixels;
- modified focal Tversky, seed 002 eq. 4:
  ``L_MFT = sum_i (1 - (sum_k (t_ik sum_{j in S_k} y_ij + eps)) /
  (alpha sum_k t_ik + (1 - alpha) sum_k sum_{j in S_k} y_ij + eps)) ** gamma``,
  with ``i`` an image of the batch (sums run over its labelled pixels and the classes),
  returned as the mean over images.

Because ``S_k`` is any set of network classes, the modification applies to each branch of the
hierarchy independently and to label sets that are arbitrary cuts of the tree. With labels at
the network's own level (``S_k = {k}``) both losses are the ordinary ones (eqs. 1 and 3; tested),
and when only a super-class is labelled the gradient reaches every one of its sub-classes.

HoVer-Net's branch losses (Graham et al. 2019) are here too: binary cross-entropy plus soft
Dice on the foreground, and MSE plus the mean squared gradient error (MSGE, on nucleus pixels)
on the horizontal/vertical distance maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE = -1


def label_groups(model_classes: Sequence, dataset_classes: Sequence, tree=None) -> torch.Tensor:
    """The ``(m, c)`` 0/1 matrix ``S``: ``S[k, j] = 1`` when network class ``j`` lies in
    dataset class ``k``.

    Both arguments are class lists with ``nodes`` (catalog :class:`ClassDef` or card
    :class:`CardClass` entries, or mappings with a ``nodes`` key). A network class lies in a
    dataset class when its hierarchy leaves are a subset of the dataset class's leaves. A
    network class that straddles two dataset classes, or a dataset class with no network class
    inside it, cannot be trained and raises ``ValueError`` naming it.
    """
    from cellbench.data.classes import load_hierarchy

    tree = tree or load_hierarchy()

    def leaves(c) -> frozenset[str]:
        nodes = c["nodes"] if isinstance(c, dict) else c.nodes
        return frozenset().union(*(tree.leaves(n) for n in nodes))

    def name(c) -> str:
        return c["name"] if isinstance(c, dict) else c.name

    mod = [leaves(c) for c in model_classes]
    out = torch.zeros(len(dataset_classes), len(model_classes))
    for k, dc in enumerate(dataset_classes):
        dl = leaves(dc)
        for j, ml in enumerate(mod):
            if ml <= dl:
                out[k, j] = 1.0
            elif ml & dl:
                raise ValueError(
                    f"network class '{name(model_classes[j])}' straddles dataset class "
                    f"'{name(dc)}': the network's class set must be at least as fine as the "
                    "dataset's"
                )
        if not out[k].any():
            raise ValueError(f"dataset class '{name(dc)}' has no network class below it")
    return out


def _group_log_probs(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``log(sum_{j in S_k} softmax(z)_j)`` for every dataset class: ``(N, m, ...)``."""
    mask = torch.where(groups > 0, 0.0, float("-inf")).to(logits)  # (m, c)
    shape = (1, *mask.shape) + (1,) * (logits.ndim - 2)
    z = logits.unsqueeze(1) + mask.reshape(shape)  # (N, m, c, ...)
    return torch.logsumexp(z, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)


def hierarchical_ce(logits: torch.Tensor, target: torch.Tensor, groups: torch.Tensor):
    """Modified cross-entropy (seed 002 eq. 2), mean over labelled pixels.

    Parameters
    ----------
    logits
        ``(N, c, ...)`` network class logits.
    target
        ``(N, ...)`` dataset class indices ``0..m-1``; :data:`IGNORE` (-1) for unlabelled
        pixels (background, unknown class).
    groups
        ``(m, c)`` membership matrix from :func:`label_groups`.
    """
    logp = _group_log_probs(logits, groups)
    valid = target >= 0
    if not valid.any():
        return logits.sum() * 0.0
    picked = torch.gather(logp, 1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
    return -(picked[valid]).mean()


#: The forms of the focal Tversky loss (:func:`hierarchical_focal_tversky`).
FT_FORMS: dict[str, str] = {
    "per_class": "Abraham and Khan (2018): a Tversky index per class over the pixels of an "
    "image, (1 - TI_k)^gamma averaged over classes; with seed 002's change, a coarse label's "
    "probability is the sum over its sub-classes S_k. alpha matters.",
    "literal": "seed 002 eq. 4 as printed: true positives pooled over all classes and pixels; "
    "when the labels cover every class the denominator is the number of labelled pixels and "
    "alpha has no effect. Kept to reproduce checkpoints trained with it.",
}


def hierarchical_focal_tversky(
    logits: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor,
    alpha: float = 0.7,
    gamma: float = 0.75,
    eps: float = 1e-6,
    form: str = "per_class",
):
    """Focal Tversky loss over a dataset's label set (seed 002 eq. 4), mean over the images.

    Arguments as :func:`hierarchical_ce`; pixels labelled ``IGNORE`` take no part. The
    probability of label k is the sum of the softmax over its sub-classes S_k.
    ``form="per_class"`` (default, :data:`FT_FORMS`): per image and label k,
    TI_k = TP_k / (TP_k + alpha FN_k + (1 - alpha) FP_k), sums over labelled pixels, and the
    loss is the mean over labels of (1 - TI_k)^gamma; ``alpha`` weighs false negatives
    (``1 - alpha`` false positives), ``gamma`` is the focal exponent (seed 002: 0.75, i.e.
    Abraham and Khan's 1/gamma with gamma = 4/3). ``form="literal"``: the printed equation
    (alpha cancels when the labels cover every class). Images without labelled pixels are
    skipped.
    """
    if form not in FT_FORMS:
        raise ValueError(f"unknown focal Tversky form '{form}' (choose {', '.join(FT_FORMS)})")
    yk = _group_log_probs(logits, groups).exp()  # (N, m, ...)
    m = groups.shape[0]
    valid = (target >= 0).unsqueeze(1)
    t = F.one_hot(target.clamp(min=0), m).movedim(-1, 1).to(yk) * valid
    yk = yk * valid
    n = target.shape[0]
    has = valid.reshape(n, -1).any(1)
    if not has.any():
        return logits.sum() * 0.0
    tp = (t * yk).reshape(n, m, -1).sum(-1)  # per image and label
    if form == "literal":
        num = (tp + eps).sum(1)
        den = alpha * t.reshape(n, -1).sum(1) + (1 - alpha) * yk.reshape(n, -1).sum(1) + eps
        # (1 - TI) ** gamma has an infinite slope at TI = 1 when gamma < 1: clamp above 0.
        return ((1 - num[has] / den[has]).clamp(min=1e-6) ** gamma).mean()
    fn = t.reshape(n, m, -1).sum(-1) - tp
    fp = yk.reshape(n, m, -1).sum(-1) - tp
    ti = (tp + eps) / (tp + alpha * fn + (1 - alpha) * fp + eps)
    return ((1 - ti[has]).clamp(min=1e-6) ** gamma).mean(1).mean()


def dice_loss(logit: torch.Tensor, target: torch.Tensor, eps: float = 1e-3):
    """Soft Dice loss of a foreground logit ``(N, H, W)`` against a 0/1 target."""
    p = torch.sigmoid(logit)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical derivatives of ``(N, 1, H, W)`` maps with HoVer-Net's 5x5
    kernel (``h / (h**2 + v**2)`` on the offsets -2..2)."""
    r = torch.arange(-2.0, 3.0, device=x.device, dtype=x.dtype)
    v, h = torch.meshgrid(r, r, indexing="ij")
    den = h * h + v * v + 1e-15
    kx = (h / den).view(1, 1, 5, 5)
    ky = (v / den).view(1, 1, 5, 5)
    return F.conv2d(x, kx, padding=2), F.conv2d(x, ky, padding=2)


def hv_loss(pred: torch.Tensor, target: torch.Tensor, fg: torch.Tensor):
    """HoVer-Net's h/v losses: ``(mse, msge)``.

    ``pred`` and ``target`` are ``(N, 2, H, W)`` (h then v), ``fg`` ``(N, H, W)`` 0/1. MSE runs
    over every pixel; MSGE compares the horizontal derivative of h and the vertical derivative
    of v on nucleus pixels.
    """
    mse = F.mse_loss(pred, target)
    gh_p, _ = _sobel(pred[:, :1])
    _, gv_p = _sobel(pred[:, 1:2])
    gh_t, _ = _sobel(target[:, :1])
    _, gv_t = _sobel(target[:, 1:2])
    w = fg.unsqueeze(1)
    se = (gh_p - gh_t) ** 2 * w + (gv_p - gv_t) ** 2 * w
    msge = se.sum() / (2 * w.sum() + 1e-6)
    return mse, msge
