"""ISBI 2014 Overlapping Cervical Cytology Image Segmentation Challenge (Lu et al. 2015/2016).

Two parts, each its own catalog entry (layout ``isbi2014``, option ``part``):

``part: edf``: real Pap-smear extended-depth-of-field images, ``edf/EDFnnn.png`` (1024 x 1024
8-bit grey) with nucleus ground truth ``edf/EDFnnn_GT.png`` in the two styles the challenge
distributed, told apart by the file's bit depth:

- **8-bit outlines** (EDF000-003): closed nucleus outlines drawn in a few grey levels (91, 101,
  ...; neighbouring nuclei in different levels). Each 8-connected component *of one grey level*
  is one outline; the nucleus is the outline with the pixels it encloses (holes filled). Taking
  components per level, not of all non-zero pixels, keeps touching outlines of different levels
  apart (137 nuclei instead of 135 in EDF000-003). The filled nuclei do not overlap here.
- **16-bit filled masks** (EDF004-015, value 32896): each 8-connected component is a nucleus.

The challenge used EDF000-007 for training and EDF008-015 for testing (``train`` / ``test``).
Nuclei do not overlap, so they are an instance map.

``part: synthetic``: ``synthetic_train/<k>.tif`` (512 x 512 grey, k = 1..45), synthetic images
composed from real isolated cells, with ``isbi_train_GT.mat``: ``train_Cytoplasm{k}`` = one
512 x 512 mask per **whole cell (they overlap)**, ``train_Nuclei{k}`` = one binary nucleus mask,
``CellNum``, ``OverlapRatio``. ``target: cells`` (default) gives the whole cells as
:class:`~cellbench.data.sample.Objects`; ``target: nuclei`` the nuclei as 8-connected components
of the nucleus mask (instance map). Only the challenge's *training* images are local, so the
split is recorded in the catalog (option ``test``: image numbers); the 45 images are 9 cell
counts (2-10) x 5 overlap bands, and the recorded test images take each cell count once.

Metadata: stain Pap, organ cervix, modality brightfield (from the catalog); magnification 40x
per the challenge paper, mpp not stated by the source (left unknown). Per sample ``n_objects``,
and for synthetic images ``cell_num`` and ``overlap_ratio`` (the mat file's band ``lo-hi``).

Layout ``isbi2014`` options::

    part: edf | synthetic
    target: cells | nuclei      # synthetic only
    test: [8, 9, ...]           # EDF or synthetic image numbers of the test split
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_pixels, confined_glob, memoised_by_file
from cellbench.data.imageio import image_size, read_image
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Objects, Sample

_EIGHT = np.ones((3, 3), bool)


def edf_nuclei(gt: np.ndarray, path: str | Path = "gt") -> np.ndarray:
    """The ``(H, W) int32`` nucleus instance map of an EDF ground-truth image (either style;
    see the module docstring)."""
    from scipy import ndimage as ndi

    gt = np.asarray(gt)
    if gt.ndim != 2 or gt.dtype.kind not in "ui":
        raise DataError(path, f"expected a 2-D integer mask, got {gt.dtype} {gt.shape}")
    out = np.zeros(gt.shape, np.int32)
    if gt.dtype.itemsize == 1:  # outlines, one grey level per neighbouring nucleus
        nxt = 0
        for level in np.unique(gt[gt > 0]):
            lab, n = ndi.label(gt == level, structure=_EIGHT)
            for k, sl in enumerate(ndi.find_objects(lab), start=1):
                filled = ndi.binary_fill_holes(lab[sl] == k)
                region = out[sl]
                region[filled & (region == 0)] = nxt + k
            nxt += n
        return out
    lab, _ = ndi.label(gt > 0, structure=_EIGHT)
    return lab.astype(np.int32)


def _mask(a, path: Path) -> np.ndarray:
    """One 2-D binary mask of the MATLAB file (numbers 0/1), else a DataError naming it."""
    a = np.asarray(a)
    if a.ndim != 2 or a.dtype.kind not in "biuf":
        raise DataError(path, f"expected 2-D numeric masks, got {a.dtype} of shape {a.shape}")
    return a.astype(bool)


@memoised_by_file(maxsize=2)
def read_synthetic_mat(path: Path) -> dict[str, list]:
    """The synthetic ground truth: ``{"cells": [[HxW bool, ...] per image], "nuclei": [HxW
    bool per image], "cell_num": [...], "overlap": [(lo, hi), ...]}``."""
    from scipy.io import loadmat

    try:
        names = ["train_Cytoplasm", "train_Nuclei", "CellNum", "OverlapRatio"]
        m = loadmat(path, variable_names=names)
        cyto, nuc = m["train_Cytoplasm"].ravel(), m["train_Nuclei"].ravel()
        cells = [[_mask(c, path) for c in np.asarray(cs).ravel()] for cs in cyto]
        nuclei = [_mask(n, path) for n in nuc]
        cell_num = [int(v) for v in m["CellNum"].ravel()] if "CellNum" in m else []
        overlap = [tuple(map(float, r)) for r in m["OverlapRatio"]] if "OverlapRatio" in m else []
    except KeyError as e:
        raise DataError(path, f"missing variable {e} (train_Cytoplasm, train_Nuclei)") from None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(path, f"unreadable MATLAB file ({type(e).__name__}: {e})") from None
    if len(cells) != len(nuclei):
        raise DataError(path, f"{len(cells)} cytoplasm sets but {len(nuclei)} nucleus masks")
    for k, (cs, n) in enumerate(zip(cells, nuclei, strict=True), start=1):
        check_pixels(n.shape[1] if n.ndim == 2 else 0, n.shape[0], path)
        if any(c.shape != n.shape for c in cs) or n.ndim != 2:
            raise DataError(path, f"image {k}: cell masks and nucleus mask differ in size")
    return {"cells": cells, "nuclei": nuclei, "cell_num": cell_num, "overlap": overlap}


@register
class ISBI2014Reader(DatasetReader):
    """The ISBI 2014 EDF or synthetic part (see the module docstring)."""

    format = "isbi2014"

    @property
    def part(self) -> str:
        part = self.options.get("part", "edf")
        if part not in ("edf", "synthetic"):
            raise DataError(self.location, f"options.part must be edf or synthetic, not {part!r}")
        return part

    @property
    def target(self) -> str:
        t = self.options.get("target", "cells")
        if t not in ("cells", "nuclei"):
            raise DataError(self.location, f"options.target must be cells or nuclei, not {t!r}")
        return t

    def _split(self, number: int) -> str:
        test = {int(v) for v in self.options.get("test") or []}
        return "test" if number in test else "train"

    def records(self) -> list[SampleRecord]:
        return self._edf_records() if self.part == "edf" else self._synthetic_records()

    def _edf_records(self) -> list[SampleRecord]:
        out = []
        for img in confined_glob(self.location, "edf/EDF*.png", self.location):
            m = re.fullmatch(r"EDF(\d+)", img.stem)
            if m is None:
                continue  # the _GT files
            gt = img.with_name(f"{img.stem}_GT.png")
            if not gt.is_file():
                raise DataError(gt, f"no nucleus ground truth for {img.name}")
            w, h = image_size(img)
            mask = read_image(gt)
            n = int(len(np.unique(edf_nuclei(mask, gt))) - 1)
            style = "outlines" if mask.dtype.itemsize == 1 else "filled"
            meta = self.base_meta(
                img.stem,
                self._split(int(m.group(1))),
                width=w,
                height=h,
                n_objects=n,
                gt_style=style,
            )
            out.append(SampleRecord(img.stem, meta["split"], meta, {"image": img, "gt": gt}))
        return out

    def _mat(self) -> dict[str, list]:
        return read_synthetic_mat(self.location / "synthetic_train" / "isbi_train_GT.mat")

    def _synthetic_records(self) -> list[SampleRecord]:
        gt = self._mat()
        out = []
        imgs = confined_glob(self.location, "synthetic_train/*.tif", self.location)
        for img in sorted(imgs, key=lambda p: (len(p.stem), p.stem)):
            if not img.stem.isdigit():
                continue
            k = int(img.stem)
            if not 1 <= k <= len(gt["cells"]):
                raise DataError(img, f"no ground truth for image {k} in isbi_train_GT.mat")
            w, h = image_size(img)
            if (h, w) != gt["nuclei"][k - 1].shape:
                raise DataError(img, f"image is {w}x{h} px but its ground truth is not")
            if self.target == "cells":
                n = sum(bool(c.any()) for c in gt["cells"][k - 1])
            else:
                from scipy import ndimage as ndi

                n = int(ndi.label(gt["nuclei"][k - 1], structure=_EIGHT)[1])
            band = gt["overlap"][k - 1] if gt["overlap"] else None
            meta = self.base_meta(
                f"synthetic_{k:02d}",
                self._split(k),
                width=w,
                height=h,
                n_objects=n,
                cell_num=gt["cell_num"][k - 1] if gt["cell_num"] else None,
                overlap_ratio=f"{band[0]:.1f}-{band[1]:.1f}" if band else None,
            )
            rec = SampleRecord(meta["sample_id"], meta["split"], meta, {"image": img}, {"k": k})
            out.append(rec)
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        if self.part == "edf":
            inst = edf_nuclei(read_image(record.files["gt"]), record.files["gt"])
            return self._sample(record, image=image, instances=inst)
        k = int(record.extra["k"])
        gt = self._mat()
        if self.target == "nuclei":
            from scipy import ndimage as ndi

            inst = ndi.label(gt["nuclei"][k - 1], structure=_EIGHT)[0].astype(np.int32)
            return self._sample(record, image=image, instances=inst)
        from scipy import ndimage as ndi

        objects = Objects.from_masks(gt["cells"][k - 1], shape=image.shape[:2])
        nuclei = ndi.label(gt["nuclei"][k - 1], structure=_EIGHT)[0].astype(np.int32)
        return self._sample(record, image=image, objects=objects, nuclei=nuclei)
