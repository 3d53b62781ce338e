"""HoVer-Net style patches (CoNSeP): image + instance ``.npy`` + ``.mat`` with types.

File formats:

- instance map ``.npy``: ``(H, W)`` unsigned ints, 0 = background;
- ``.mat`` (HoVer-Net ``type_mat``): ``inst_type`` ``(N, 1)`` class per instance and
  ``inst_centroid`` ``(N, 2)`` as ``(x, y)``. Row ``k`` describes the ``k``-th instance id in
  ascending order (for whole images that is id ``k + 1``; the CoNSeP patches here keep the ids
  of their source image, so ids are not contiguous; checked against the centroids).

Layout ``hovernet`` options::

    splits: [train, test]
    images: "images/{split}/*.jpg"
    instances: "inst/{split}/{stem}.npy"
    types: "type_mat/{split}/{stem}.mat"        # optional
    slide_pattern: "^(?P<slide>.+)_(?P<patch>\\d+)$"   # sample id -> source image (optional)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import confined_glob
from cellbench.data.imageio import (
    check_same_size,
    image_size,
    read_label_image,
)
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Sample


def read_type_mat(path: str | Path, variables: tuple[str, ...] = ("inst_type", "inst_centroid")):
    """Read HoVer-Net ``inst_type`` ``(N,)`` int and ``inst_centroid`` ``(N, 2)`` ``(x, y)``."""
    from scipy.io import loadmat

    p = Path(path)
    try:
        m = loadmat(p, variable_names=list(variables))
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(p, f"unreadable .mat file ({type(e).__name__}: {e})") from None
    if "inst_type" in variables and "inst_type" not in m:
        raise DataError(p, "no 'inst_type' variable")
    raw_t = np.asarray(m.get("inst_type", np.zeros((0, 1))))
    raw_c = np.asarray(m.get("inst_centroid", np.zeros((0, 2))))
    for name, a in (("inst_type", raw_t), ("inst_centroid", raw_c)):
        if a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not np.isfinite(a).all()):
            raise DataError(p, f"'{name}' must hold finite numbers, got dtype {a.dtype}")
    types = raw_t.reshape(-1)
    if len(types) and not np.all(types == np.round(types)):
        raise DataError(p, "'inst_type' has non-integer values")
    if raw_c.size % 2:
        raise DataError(p, f"'inst_centroid' has shape {raw_c.shape}, expected (N, 2)")
    return types.astype(np.int32), raw_c.astype(np.float64).reshape(-1, 2)


@register
class HoverNetReader(DatasetReader):
    """Folders of patches with ``.npy`` instance maps and HoVer-Net ``.mat`` type files."""

    format = "hovernet"

    def records(self) -> list[SampleRecord]:
        o = self.options
        pat = re.compile(o["slide_pattern"]) if o.get("slide_pattern") else None
        out = []
        for split in o["splits"]:
            pattern = o["images"].format(split=split)
            for img in confined_glob(self.location, pattern, self.location):
                stem = img.stem
                files = {
                    "image": img,
                    "instances": self.path(o["instances"].format(split=split, stem=stem)),
                }
                n = None
                extra = {}
                if o.get("types"):
                    files["types"] = self.path(o["types"].format(split=split, stem=stem))
                    types = read_type_mat(files["types"], ("inst_type",))[0]
                    n = len(types)
                    # kept with the record (and its cache, which follows the files): loading
                    # the sample needs no .mat reader then
                    extra["inst_type"] = types.tolist()
                m = pat.match(stem) if pat else None
                w, h = image_size(img)
                meta = self.base_meta(
                    stem,
                    split,
                    slide_id=m.group("slide") if m else None,
                    width=w,
                    height=h,
                    n_objects=n,
                )
                out.append(SampleRecord(stem, split, meta, files, extra))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        inst = read_label_image(record.files["instances"])
        check_same_size(image, inst, record.files["instances"])
        classes = None
        if "types" in record.files:
            if "inst_type" in record.extra:
                types = np.asarray(record.extra["inst_type"], np.int32)
            else:
                types, _ = read_type_mat(record.files["types"])
            ids = np.unique(inst[inst > 0])
            if len(ids) != len(types):
                raise DataError(
                    record.files["types"],
                    f"{len(types)} inst_type rows for {len(ids)} instances in "
                    f"{record.files['instances'].name}",
                )
            declared = {c.id for c in self.dataset.classes}
            unknown = sorted(set(types.tolist()) - declared) if declared else []
            if unknown:
                raise DataError(
                    record.files["types"],
                    f"inst_type value(s) {unknown} are not classes of '{self.dataset.id}' "
                    f"(ids {sorted(declared)})",
                )
            classes = {int(i): int(t) for i, t in zip(ids, types, strict=True)}
        return self._sample(record, image=image, instances=inst, classes=classes)
