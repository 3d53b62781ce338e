"""Named metric conventions (``shared/DESIGN.md`` §5).

Published scorers disagree on small things that change numbers visibly: whether IoU = 0.5
matches, which epsilons sit in which denominator, whether a dataset figure is a mean over
images or a ratio of pooled counts. cellbench never picks silently: every score is computed
under a named preset, stored with its name, and :func:`describe` says what it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellbench.core.errors import CellbenchError


@dataclass(frozen=True)
class Preset:
    """One scorer's conventions.

    Attributes
    ----------
    name
        Identifier used in the API, the CLI and stored results.
    kind
        ``"instance"`` (label maps or objects), ``"points"`` or ``"semantic"`` (class masks).
    inclusive
        Instances: a pair matches when ``IoU >= t`` (True) or ``IoU > t`` (False).
        Points: a pair matches when ``distance <= r`` (always inclusive in the references).
    averaging
        ``"image"``: dataset figure = mean of per-image values; ``"pooled"``: counts (TP, FP,
        FN, summed IoU) are added over images first.
    matching
        How pairs are chosen, in words.
    epsilons
        Where the reference adds small constants.
    empty
        What happens to images without ground truth and/or predictions.
    reference
        The implementation reproduced.
    needs_classes
        The convention scores classified instances only (both sides need classes).
    iou_float32
        Instances: the reference computes IoU in float32 (StarDist), so thresholds are
        decided and matched IoUs summed in float32 as it does (an IoU just below 0.5 in
        float64 can round to 0.5); the ratios of that sum are float64.
    """

    name: str
    kind: str
    inclusive: bool
    averaging: str
    matching: str
    epsilons: str
    empty: str
    reference: str
    iou_float32: bool = False
    #: the convention is defined on classified instances only (MoNuSAC's per-class PQ)
    needs_classes: bool = False


_EMPTY = (
    "An image with neither ground truth nor prediction has null scores and is left out of "
    "means (the reference cannot score it: division by zero). Ground truth only or "
    "prediction only scores 0 and counts."
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="hovernet",
            kind="instance",
            inclusive=False,
            averaging="image",
            matching=(
                "IoU > t (strict). For t >= 0.5 such pairs are unique, no assignment step; "
                "for t < 0.5 Hungarian on -IoU, then pairs with IoU > t kept. AJI: each GT "
                "takes the prediction of highest IoU (reuse allowed); AJI+: Hungarian. "
                "Classification: centroids truncated to integers, Hungarian on distance over "
                "all pairs, pairs beyond the radius dropped afterwards (up to 1.5 M centroid "
                "pairs, ~1200 x 1200 nuclei; beyond, whole slides, pairs within the radius: "
                "type_pairing). A class-agnostic model on a classed ground truth also gets "
                "seed 000's F_I..F_IV (f_cat): per ground-truth category k, TP_k / FN_k = "
                "paired / unpaired GT nuclei of k, FP_k = unpaired predictions whose nearest "
                "GT nucleus is of k (category_fp='nearest'; 'none' leaves FPs out: "
                "F_k = 2TP_k/(2TP_k + FN_k)); F_k = 2TP_k/(2TP_k + FP_k + FN_k)."
            ),
            epsilons=(
                "DQ = TP/(TP + FP/2 + FN/2) (none); SQ = sum IoU/(TP + 1e-6); "
                "AJI/AJI+ pairing IoU = inter/(union + 1e-6)."
            ),
            empty=_EMPTY
            + " Per-class PQ, as in the PanNuke metrics, is averaged over the images whose "
            "ground truth has the class. For type classification compute_stats.py inserts a "
            "dummy nucleus at (0, 0) of type 0 into an image without nuclei; cellbench does "
            "not (it would add a phantom FN or FP).",
            reference="vqdang/hover_net metrics/stats_utils.py, compute_stats.py",
        ),
        Preset(
            name="pannuke",
            kind="instance",
            inclusive=False,
            averaging="image",
            matching=(
                "As hovernet (get_fast_pq, IoU > 0.5), per image and per class on that class's "
                "instance map (channels 0-4 of masks.npy, ids remapped); bPQ on the binarised "
                "map (channels 0-4 painted in order, a later channel overwriting)."
            ),
            epsilons="DQ = TP/(TP + FP/2 + FN/2); SQ = sum IoU/(TP + 1e-6) (get_fast_pq).",
            empty=(
                "A class absent from an image's ground truth has PQ NaN there (its false "
                "positives are not counted); bPQ is NaN for an image without nuclei. Image mPQ "
                "= nan-mean over the 5 classes; class PQ = nan-mean over images; tissue mPQ / "
                "bPQ = nan-mean over its images; reported mPQ / bPQ = nan-mean over the 19 "
                "tissues of run.py (images of other tissue names are left out, as there). "
                "Fold level: `score instances --preset pannuke` on a folder with masks.npy "
                "and types.npy. Per image (evaluate): hovernet's figures, mPQ over the classes "
                "in the GT, bPQ over images with nuclei; tissue means by --group-by organ."
            ),
            reference="TissueImageAnalytics/PanNuke-metrics run.py, utils.py",
        ),
        Preset(
            name="monuseg",
            kind="instance",
            inclusive=False,
            averaging="image",
            matching=(
                "AJI as the MoNuSeg 2018 challenge (Aggregated_Jaccard_Index_v1_0.m): each GT "
                "nucleus takes the overlapping prediction of highest exact Jaccard index (ties "
                "to the lowest id; a prediction may be reused), a GT without overlap adds its "
                "area to the union, unused predictions add theirs. PQ and the rest as hovernet."
            ),
            epsilons="none in AJI (AJI = sum |G ∩ P*| / union); PQ as hovernet.",
            empty=_EMPTY + " Challenge figure = mean of the per-image AJI.",
            reference="ruchikaverma-iitg/MoNuSeg Aggregated_Jaccard_Index_v1_0.m, compute_AJI.m",
        ),
        Preset(
            name="monusac",
            kind="instance",
            inclusive=False,
            averaging="image",
            matching=(
                "As published (PQ_metric.ipynb): per sub-image and class, predictions in the "
                "ambiguous regions removed, pairs with IoU > 0.5; after pairing the GT object's "
                "id (not its partner's) is removed from the predicted ids, so FP depends on "
                "how the two maps' ids line up (Foucart et al. 2022, II.A)."
            ),
            epsilons="none: PQ = sum IoU/(TP + FP/2 + FN/2).",
            empty=(
                "A class is scored in an image only when its ground truth has it (false "
                "positives of other classes are never counted); image PQ = mean over scored "
                "classes; a-PQ = mean over sub-images. Ambiguous regions: <stem>_ambiguous."
                "<png|npy|tif> beside the ground truth."
            ),
            reference="ruchikaverma-iitg/MoNuSAC PQ_metric.ipynb (the challenge's results)",
            needs_classes=True,
        ),
        Preset(
            name="monusac_corrected",
            kind="instance",
            inclusive=False,
            averaging="image",
            matching=(
                "Per sub-image and class, ambiguous regions removed from both sides, pairs "
                "with IoU > 0.5, FP = predictions not matched (Foucart et al. 2022)."
            ),
            epsilons="none: PQ = sum IoU/(TP + FP/2 + FN/2).",
            empty=(
                "A class present in the ground truth or the prediction is scored (FP-only "
                "classes score 0); image PQ = mean over scored classes; a-PQ = mean over "
                "patients (TCGA-XX-XXXX in the sample id) of their sub-images' mean."
            ),
            reference="Foucart, Debeir, Decaestecker, IEEE TMI 41(4) 2022 "
            "(adfoucart/monusac-results-code-analysis)",
            needs_classes=True,
        ),
        Preset(
            name="stardist",
            kind="instance",
            inclusive=True,
            averaging="pooled",
            matching=(
                "IoU >= t (inclusive); Hungarian maximising the number of matches, IoU as "
                "tie-breaker. `by_image=True` averages per-image ratios instead of pooling."
            ),
            epsilons="none: ratios are 0 when their numerator (TP) is 0. IoU in float32, as "
            "StarDist computes it (thresholds decided and IoUs summed in float32).",
            empty=_EMPTY
            + " (stardist.matching_dataset with by_image=True would count such an image as "
            "0 in the mean; pooled counts are unaffected.)",
            reference="stardist/matching.py matching, matching_dataset",
            iou_float32=True,
        ),
        Preset(
            name="conic",
            kind="instance",
            inclusive=False,
            averaging="pooled",
            matching="IoU > t (strict), t = 0.5; per class on the class-restricted maps.",
            epsilons="DQ = TP/(TP + FP/2 + FN/2 + 1e-6); SQ = sum IoU/(TP + 1e-6).",
            empty=_EMPTY
            + " mPQ+ pools TP/FP/FN/sum IoU per class over all images, then averages PQ "
            "over all declared classes (a class absent everywhere counts as 0); bPQ is the "
            "mean of per-image binary PQ.",
            reference="TissueImageAnalytics/CoNIC compute_stats.py, metrics/stats_utils.py",
        ),
        Preset(
            name="torchmetrics",
            kind="instance",
            inclusive=False,
            averaging="pooled",
            matching="IoU > 0.5 (strict) between segments of the same category.",
            epsilons=(
                "none: PQ = sum IoU/(TP + FP/2 + FN/2), SQ = sum IoU/TP, RQ = TP/(TP + FP/2 "
                "+ FN/2), 0 where the denominator is 0; classes with a zero denominator are "
                "left out of the class mean. Returned as [PQ, SQ, RQ]."
            ),
            empty=_EMPTY + " Background is not scored (things only); torchmetrics with stuffs={0} "
            "would add a background 'stuff' class to the mean: use background_stuff=True.",
            reference="torchmetrics.detection.PanopticQuality",
        ),
        Preset(
            name="isbi2014",
            kind="instance",
            inclusive=False,
            averaging="pooled",
            matching=(
                "ISBI 2014 overlapping-cell challenge: on the objects themselves (they may "
                "overlap), one-to-one pairs chosen greedily from the highest Dice down; a "
                "ground-truth object is detected when its Dice > 0.7. DSC, TPp = |G∩S|/|G| and "
                "FPp = |S\\G|/(H·W − |G|) over detected objects, FNo = undetected / GT objects, "
                "FDRo = (segmented − detected) / segmented. PQ/AJI alongside at IoU > 0.5 "
                "(an object with two partners above it is resolved by assignment)."
            ),
            epsilons="none: ratios are None where their denominator is 0.",
            empty=_EMPTY
            + " DSC, TPp and FPp of an image without detection are None (left out of the "
            "pooled means, which run over detected objects).",
            reference=(
                "Lu et al., IEEE JBHI 2016 (ISBI 2014 challenge); EvaluateSegmentation.m of the "
                "ISBI 2015 data (greedy Dice assignment, pooled over objects)"
            ),
        ),
        Preset(
            name="ocelot",
            kind="points",
            inclusive=True,
            averaging="pooled",
            matching=(
                "Per class and image, predictions in descending confidence take the nearest "
                "unmatched GT of the same class within the radius (distance <= r, float32), "
                "else FP. order='official' reproduces the challenge script, which sorts by "
                "the class column instead of the probability."
            ),
            epsilons=(
                "P = TP/(TP + FP + 1e-7), R = TP/(n_GT + 1e-7), F1 = 2PR/(P + R + 1e-7), "
                "each rounded to 4 decimals; mF1 = mean of the class F1s."
            ),
            empty=(
                "Counts are pooled over images, so an image without points adds nothing; "
                "its own per-image values are null."
            ),
            reference="lunit-io/ocelot23algo evaluation/eval.py (radius 15 px)",
        ),
        Preset(
            name="hungarian",
            kind="points",
            inclusive=True,
            averaging="pooled",
            matching=(
                "Optimal one-to-one assignment restricted to pairs within the radius: the "
                "most matches, then the smallest total distance. Ignores confidence."
            ),
            epsilons="none: ratios are 0 when their numerator is 0; no rounding.",
            empty=(
                "Counts are pooled over images, so an image without points adds nothing; "
                "its own per-image values are null."
            ),
            reference="cellbench (radius-restricted variant of HoVer-Net pair_coordinates)",
        ),
        Preset(
            name="apacs23",
            kind="semantic",
            inclusive=True,
            averaging="pooled",
            matching="none: pixel classes compared pixel by pixel.",
            epsilons="none: None where a class is in neither mask.",
            empty="Pixel counts are pooled over images, so an empty image only adds negatives.",
            reference=(
                "seed 001 (APACS23): Accuracy, IoU and Dice of the cell class from pixel counts "
                "pooled over the test set (its reported pairs satisfy Dice = 2 IoU / (1 + IoU))"
            ),
        ),
        Preset(
            name="pixels_image",
            kind="semantic",
            inclusive=True,
            averaging="image",
            matching="none: pixel classes compared pixel by pixel.",
            epsilons="none: None where a class is in neither mask.",
            empty="An image where a class is in neither mask leaves it out of that class's mean.",
            reference="per-image pixel Accuracy / IoU / Dice, averaged over images",
        ),
    )
}

#: Presets that score PQ as HoVer-Net's get_fast_pq does (same matching, epsilons, averaging).
HOVERNET_LIKE = ("hovernet", "pannuke", "monuseg")

INSTANCE_PRESETS = tuple(n for n, p in PRESETS.items() if p.kind == "instance")
POINT_PRESETS = tuple(n for n, p in PRESETS.items() if p.kind == "points")
SEMANTIC_PRESETS = tuple(n for n, p in PRESETS.items() if p.kind == "semantic")


def get_preset(name: str, kind: str | None = None) -> Preset:
    """Look up a preset by name; unknown names (or the wrong kind) raise a clear error."""
    p = PRESETS.get(name)
    if p is None or (kind is not None and p.kind != kind):
        names = {
            "instance": INSTANCE_PRESETS,
            "points": POINT_PRESETS,
            "semantic": SEMANTIC_PRESETS,
        }.get(kind or "", tuple(PRESETS))
        raise CellbenchError(
            f"unknown {kind + ' ' if kind else ''}metric preset {name!r}; "
            f"choose one of {', '.join(names)}"
        )
    return p


def describe(name: str) -> str:
    """A paragraph describing the preset's conventions, for the CLI, app and figures."""
    p = get_preset(name)
    return (
        f"{p.name} ({p.kind}; reproduces {p.reference}). Matching: {p.matching} "
        f"Epsilons: {p.epsilons} Averaging: {p.averaging}. Empty images: {p.empty}"
    )
