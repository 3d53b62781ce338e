"""Stain normalisation of H&E images before a network sees them (seed 003 Fig. 8).

The methods are torchstain's (numpy backend; Macenko et al. 2009, Reinhard et al. 2001),
not re-implemented here. A model card's ``input.stain`` names the method and holds its fitted
reference, so the same transform runs in training (each training image once, as it is loaded)
and at inference (each image, or each tile of a slide, before tiling):

- ``macenko``: each image's H and E stain vectors and concentrations (optical density, the
  plane of its two largest eigenvectors, the 1st / 99th angle percentiles) are mapped onto the
  reference stain matrix ``HERef`` (3 x 2) and 99th-percentile concentrations ``maxCRef`` (2,):
  torchstain's defaults (Macenko's reference) unless fitted to a target image;
- ``reinhard``: per-channel mean and standard deviation in LAB matched to a target image's
  (``means``, ``stds``: 3 each; a target is required).

An image the method cannot estimate (too few stained pixels: a background or blank tile) is
left as it is, and counted: the predictor and the training say how many.

Units: images are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

METHODS = ("none", "macenko", "reinhard")
#: The fitted reference of each method: name -> shape.
PARAM_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "macenko": {"HERef": (3, 2), "maxCRef": (2,)},
    "reinhard": {"means": (3,), "stds": (3,)},
}


class StainSpec(BaseModel):
    """``input.stain`` of a model card (and ``stain`` of a training config).

    Attributes
    ----------
    method
        ``none``, ``macenko`` or ``reinhard``.
    target
        ``dataset/sample_id`` of the image the reference was fitted to (a training config
        names it; the card records it); None: torchstain's default Macenko reference.
    params
        The fitted reference: ``HERef`` (3 x 2) and ``maxCRef`` (2) for Macenko, ``means`` and
        ``stds`` (3 each, LAB) for Reinhard. Filled in by training.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["none", "macenko", "reinhard"] = "none"
    target: str | None = None
    params: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit_the_method(self) -> StainSpec:
        if not self.params:
            return self
        shapes = PARAM_SHAPES.get(self.method, {})
        if set(self.params) != set(shapes):
            raise ValueError(
                f"stain params of method '{self.method}' are {sorted(shapes) or 'none'}, "
                f"got {sorted(self.params)}"
            )
        for name, shape in shapes.items():
            try:
                a = np.asarray(self.params[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"stain params '{name}': numbers expected") from None
            if a.shape != shape or not np.isfinite(a).all():
                raise ValueError(f"stain params '{name}': {shape} finite numbers expected")
        return self


def _macenko(params: dict[str, list[Any]] | None = None):
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    n = NumpyMacenkoNormalizer()
    if params:
        n.HERef = np.asarray(params["HERef"], np.float64).reshape(3, 2)
        n.maxCRef = np.asarray(params["maxCRef"], np.float64).reshape(2)
    return n


def _reinhard(params: dict[str, list[Any]] | None = None):
    from torchstain.numpy.normalizers import NumpyReinhardNormalizer

    n = NumpyReinhardNormalizer()
    if params:
        n.target_means = np.asarray(params["means"], np.float64)
        n.target_stds = np.asarray(params["stds"], np.float64)
    return n


def fit(method: str, target: np.ndarray) -> dict[str, list[Any]]:
    """The reference of ``method`` fitted to ``target`` ``(H, W, 3)`` uint8 RGB."""
    img = np.ascontiguousarray(target[..., :3], dtype=np.uint8)
    if method == "macenko":
        n = _macenko()
        n.fit(img)
        return {"HERef": n.HERef.tolist(), "maxCRef": n.maxCRef.tolist()}
    if method == "reinhard":
        n = _reinhard()
        n.fit(img)
        return {
            "means": np.asarray(n.target_means).tolist(),
            "stds": np.asarray(n.target_stds).tolist(),
        }
    raise ValueError(f"unknown stain method {method!r}; choose one of {METHODS}")


class Normalizer:
    """The card's stain transform as a callable on ``(H, W, 3)`` uint8 RGB images.

    ``skipped`` counts the images left unchanged (the method could not estimate their stains).
    """

    def __init__(self, spec: StainSpec):
        self.spec = spec
        self.skipped = 0
        self._n = None
        if spec.method == "macenko":
            self._n = _macenko(spec.params or None)
        elif spec.method == "reinhard":
            if not spec.params:
                raise ValueError("stain method 'reinhard' needs a fitted target (params)")
            self._n = _reinhard(spec.params)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self._n is None:
            return image
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[-1] < 3:
            return image  # grey images: nothing to normalise
        rgb = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if self.spec.method == "macenko":
                    out = self._n.normalize(I=rgb, stains=False)[0]
                else:
                    out = self._n.normalize(I=rgb)
        except (np.linalg.LinAlgError, ValueError, IndexError):
            out = None
        if out is None or out.shape != rgb.shape or not np.isfinite(out).all():
            self.skipped += 1
            return image
        return np.asarray(out, dtype=np.uint8)


def stain_of(card) -> StainSpec:
    """A card's ``input.stain`` (none when absent)."""
    return getattr(card.input, "stain", None) or StainSpec()
