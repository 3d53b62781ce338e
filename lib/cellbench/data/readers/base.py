"""The reader interface and registry.

A *reader* knows one on-disk layout of a dataset (named by ``local.format`` in the catalog).
It has two jobs, kept apart so that listing is cheap:

- :meth:`DatasetReader.records` lists the samples with their metadata, reading only headers and
  annotation counts (no pixels);
- :meth:`DatasetReader.load` decodes one sample into a :class:`~cellbench.data.sample.Sample`.

Readers that hold predictions made by a model (e.g. OCELOT's fold_0 predictions) list them in
:meth:`DatasetReader.prediction_sets` and load them with :meth:`DatasetReader.load_predictions`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.imageio import NoPixels, image_or_shape
from cellbench.data.sample import STANDARD_COLUMNS, Points, Sample, SampleRecord

READERS: dict[str, type[DatasetReader]] = {}


def register(cls: type[DatasetReader]) -> type[DatasetReader]:
    """Class decorator: make a reader available under its ``format`` name."""
    READERS[cls.format] = cls
    return cls


_TCGA = re.compile(r"^(TCGA)-([A-Z0-9]{2})-([A-Z0-9]{4})")


def tcga_fields(barcode: str) -> dict[str, str | None]:
    """Parse a TCGA barcode: ``center`` = tissue source site code, ``patient_id`` = case.

    ``TCGA-<TSS>-<participant>-...``; the TSS identifies the contributing center. Non-TCGA
    names give ``None`` values.
    """
    m = _TCGA.match(barcode)
    if not m:
        return {"center": None, "patient_id": None}
    return {"center": m.group(2), "patient_id": f"TCGA-{m.group(2)}-{m.group(3)}"}


class DatasetReader:
    """Base class; subclasses set ``format`` and implement :meth:`records` and :meth:`load`.

    Parameters
    ----------
    dataset
        The catalog entry (:class:`cellbench.data.catalog.Dataset`).
    location
        Absolute folder of the local data.
    """

    format: ClassVar[str] = ""

    def __init__(self, dataset, location: Path):
        self.dataset = dataset
        self.location = location
        self.options: dict[str, Any] = dict(dataset.local.options) if dataset.local else {}

    # -- helpers -------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """A path relative to the dataset location (``..`` is refused)."""
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(self.location / rel, "reader option paths must stay inside the dataset")
        return self.location / rel

    def base_meta(self, sample_id: str, split: str | None, **values: Any) -> dict[str, Any]:
        """Standard columns filled from the catalog entry, then from ``values``.

        Catalog-level defaults: stain (when the dataset has one), organ (when it has one), mpp,
        and any ``meta`` constants in the reader options (e.g. a single-center dataset's center);
        the option ``mpp_per_image`` (``{sample id: mpp}``) overrides the dataset's mpp.
        """
        d = self.dataset
        meta: dict[str, Any] = dict.fromkeys(STANDARD_COLUMNS)
        meta.update(
            dataset=d.id,
            split=split,
            sample_id=sample_id,
            stain=d.stain[0] if len(d.stain) == 1 else None,
            organ=d.organs[0] if len(d.organs) == 1 else None,
            mpp=d.mpp,
        )
        meta.update(self.options.get("meta", {}))
        per_image = self.options.get("mpp_per_image") or {}
        if sample_id in per_image:  # user datasets of mixed magnification
            meta["mpp"] = float(per_image[sample_id])
        meta.update({k: v for k, v in values.items() if v is not None or k not in meta})
        if sample_id in (self.options.get("partial") or {}):
            meta["annotation"] = "partial"
        return meta

    def class_id(self, name: str, path: Path) -> int:
        """The dataset class id of a class name; unknown names raise naming the file."""
        from cellbench.core.errors import UnknownClassError

        by_name = self.dataset.class_by_name()
        c = by_name.get(name) or by_name.get(name.lower())
        if c is None:
            known = ", ".join(c.name for c in self.dataset.classes) or "(none)"
            raise UnknownClassError(path, f"unknown class name '{name}' (known: {known})")
        return c.id

    # -- interface -----------------------------------------------------------------------
    def records(self) -> list[SampleRecord]:
        raise NotImplementedError

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        """The sample of ``record``: image, annotations, metadata. With ``pixels=False`` the
        image is not decoded (``Sample.image`` is None; sizes are still checked against its
        header): for scoring stored predictions, which needs only the annotations."""
        raise NotImplementedError

    def region_rules(self, records) -> dict | None:
        """How the annotated regions of ``records`` are derived (part of a run's identity: a
        run scored within regions differs from one without); None when there are none."""
        partial = self.options.get("partial") or {}
        rules = {r.sample_id: partial[r.sample_id] for r in records if r.sample_id in partial}
        return rules or None

    def prediction_sets(self) -> list[str]:
        """Names of stored prediction sets shipped with the data (default none)."""
        return []

    def load_predictions(self, record: SampleRecord, name: str) -> Points:
        raise KeyError(name)

    def prediction_files(self, name: str) -> list[Path]:
        """The files a stored prediction set is read from (their content identifies runs)."""
        return []

    def image(self, record: SampleRecord, pixels: bool = True) -> np.ndarray:
        """The record's image decoded, or with ``pixels=False`` a
        :class:`~cellbench.data.imageio.NoPixels` of its size: the listing's ``width`` and
        ``height`` (read from the header when the dataset was listed; the listing is renewed
        when files change), else the header."""
        w, h = record.meta.get("width"), record.meta.get("height")
        size = (int(w), int(h)) if w and h else None
        return image_or_shape(record.files["image"], pixels, size)

    def _sample(self, record: SampleRecord, **arrays: Any) -> Sample:
        if isinstance(arrays.get("image"), NoPixels):
            arrays["image"] = None
        s = Sample(
            dataset=self.dataset.id,
            sample_id=record.sample_id,
            split=record.split,
            meta=dict(record.meta),
            **arrays,
        )
        spec = (self.options.get("partial") or {}).get(record.sample_id)
        if spec is not None and s.annotated_region is None:
            s.annotated_region = annotated_region(s, int((spec or {}).get("margin_px", 0)))
        return s


def annotated_region(sample: Sample, margin_px: int = 0) -> np.ndarray | None:
    """Where a partly annotated sample's annotation is complete: the convex hull of its
    annotated objects (instances, else points), grown by ``margin_px`` pixels.

    The catalog names such samples (reader option ``partial: {sample_id: {margin_px: N}}``);
    the hull is the assumption that the annotator covered one connected area completely.
    """
    from scipy import ndimage as ndi
    from skimage.morphology import convex_hull_image, disk

    shape = None
    if sample.instances is not None:
        mask = np.asarray(sample.instances) > 0
    elif sample.points is not None and len(sample.points):
        shape = (
            sample.image.shape[:2]
            if sample.image is not None
            else (
                int(sample.meta.get("height") or 0),
                int(sample.meta.get("width") or 0),
            )
        )
        mask = np.zeros(shape, bool)
        xy = np.clip(np.rint(sample.points.xy).astype(int), 0, [shape[1] - 1, shape[0] - 1])
        mask[xy[:, 1], xy[:, 0]] = True
    else:
        return None
    if not mask.any():
        return None
    hull = convex_hull_image(mask)
    if margin_px > 0:
        hull = ndi.binary_dilation(hull, structure=disk(margin_px))
    return hull
