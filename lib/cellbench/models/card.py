"""Model cards: what a checkpoint is, how to feed it and how to read its outputs.

A card is a YAML file next to (or pointing at) the weights. Fields (``shared/DESIGN.md`` §3):

- ``id``, ``name``, ``description``, ``license``, ``citation``;
- ``kind``: ``cellbench`` (a state_dict of a built-in architecture, ``architecture`` and
  ``kwargs`` name it), ``torchscript`` or ``onnx``;
- ``weights``: ``{file, sha256}``. ``file`` is relative to the card's folder, absolute, or
  ``data:<path>`` relative to the data root (``CELLBENCH_DATA``) for weights that live with the
  data (e.g. the bioimage.io model in ``../shared/data/models``);
- ``input``: channels (``rgb`` or ``gray``), ``mpp`` (microns per pixel the model was trained
  at; null = use images as they are), normalisation (``zero_mean_unit_variance`` per image,
  ``scale_unit`` = divide by 255, or ``mean_std`` with per-channel ``mean``/``std`` on 0-255
  values), tile size and halo in model pixels, whether the tile shape is fixed;
- ``output``: ``kind`` = ``foreground`` (1 channel), ``hovernet`` (foreground, h, v, then
  ``n_types`` type channels) or ``instances`` (the model's own instance map: channel 0 instance
  ids, 0 = background, optional channel 1 a pixel class map, 0 = none; an exported InstanSeg,
  or Cellpose / StarDist driven through their own packages; taken as is: ``activation: none``
  and ``postprocess.method: none``, tiles stitched by instance, see
  :func:`cellbench.models.inference.tiled_instances`), ``activation`` applied to the
  foreground channel (``sigmoid`` for logits, ``none`` for probabilities);
- ``classes``: the class set of the type head (ids 1.., names, class-hierarchy nodes);
- ``postprocess``: parameters of :mod:`cellbench.models.postprocess`; ``grid`` says where it
  runs when the model's mpp differs from the image's: ``model`` (in model pixels, labels
  brought back by nearest-neighbour sampling) or ``image`` (output maps resized bilinearly to
  the image grid first, so boundaries keep the image's resolution; sizes in image pixels);
- ``training``: datasets, splits and notes; ``provenance``: where the card's facts come from.

Loading validates the YAML with a schema; problems raise :class:`~cellbench.core.errors.DataError`
naming the card file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cellbench.core import config
from cellbench.core.errors import DataError
from cellbench.core.safety import load_yaml, read_text
from cellbench.models.stain import StainSpec

#: Names of the built-in architectures (``cellbench.models.nets.ARCHITECTURES``), kept here so
#: that reading a card does not import torch.
ARCHITECTURE_NAMES = ("hovernet_lite", "unet_lite")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class InputSpec(_Strict):
    channels: Literal["rgb", "gray"] = "rgb"
    mpp: float | None = Field(default=None, gt=0)
    normalization: Literal["zero_mean_unit_variance", "scale_unit", "mean_std"] = "scale_unit"
    mean: list[float] | None = None
    std: list[float] | None = None
    eps: float = 1e-6
    tile: int = Field(default=256, ge=16)
    halo: int = Field(default=32, ge=0)
    fixed_shape: bool = False
    multiple_of: int = Field(default=1, ge=1)
    #: stain normalisation before the network (:mod:`cellbench.models.stain`)
    stain: StainSpec = Field(default_factory=StainSpec)


class OutputSpec(_Strict):
    kind: Literal["foreground", "hovernet", "instances"] = "foreground"
    activation: Literal["sigmoid", "none"] = "sigmoid"
    n_types: int = Field(default=0, ge=0)


class CardClass(_Strict):
    id: int = Field(ge=1)
    name: str
    nodes: list[str] = Field(min_length=1)
    color: str | None = None


class PostProcess(_Strict):
    method: Literal[
        "connected_components", "distance_watershed", "hovernet", "hovernet_gauss", "none"
    ] = "connected_components"
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_size: int = Field(default=10, ge=0)
    marker_threshold: float = Field(default=0.4, gt=0, lt=1)
    sigma: float = Field(default=1.0, gt=0)
    min_distance: int = Field(default=3, ge=1)
    grid: Literal["model", "image"] = "model"


class Training(_Strict):
    datasets: list[str] = Field(default_factory=list)
    #: how the training set is named in comparisons (the store's ``train_datasets``); default
    #: the datasets joined with "+" (a fused set). Recipes that are not plain (fused) training
    #: sets name themselves, e.g. ``consep>monuseg`` (pretrain > fine-tune) or
    #: ``monuseg@centers`` (a center-held-out subset), so they never share a matrix row.
    label: str | None = None
    #: the model family (architecture / recipe) whose comparisons this model joins; default
    #: the architecture. Two families trained on the same data get two train x test matrices.
    family: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)
    notes: str = ""
    epochs: int | None = None
    #: the training seed; models that differ only by it are replicates (aggregated over seeds)
    seed: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelCard(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-.]*$")
    name: str
    description: str = ""
    license: str = "unknown"
    citation: str = ""
    kind: Literal["cellbench", "torchscript", "onnx"]
    architecture: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: Weights
    input: InputSpec = Field(default_factory=InputSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    classes: list[CardClass] = Field(default_factory=list)
    postprocess: PostProcess = Field(default_factory=PostProcess)
    training: Training = Field(default_factory=Training)
    provenance: str = ""
    #: ``kind: cellbench`` on the CPU: ``onnx`` (ONNX Runtime on a checked export, 3x faster),
    #: ``torch``, or ``auto`` (onnx where the export works); see :mod:`cellbench.models.export`
    cpu_backend: Literal["auto", "onnx", "torch"] = "auto"

    @field_validator("architecture")
    @classmethod
    def _arch(cls, v: str | None) -> str | None:
        if v is not None and v not in ARCHITECTURE_NAMES:
            raise ValueError(f"unknown architecture '{v}' (known: {sorted(ARCHITECTURE_NAMES)})")
        return v

    def model_post_init(self, __context: Any) -> None:
        spec = self.input
        if spec.normalization == "mean_std":
            n = 3 if spec.channels == "rgb" else 1
            if spec.mean is None or spec.std is None or len(spec.mean) != n or len(spec.std) != n:
                raise ValueError(
                    f"input normalization 'mean_std' needs {n} 'mean' and 'std' values"
                )
        if self.kind == "cellbench" and self.architecture is None:
            raise ValueError("kind 'cellbench' needs 'architecture'")
        out, post = self.output, self.postprocess
        if (out.kind == "instances") != (post.method == "none"):
            raise ValueError(
                "output.kind 'instances' (the model's own instance map) goes with "
                "postprocess.method 'none', and only with it"
            )
        if out.kind == "instances" and (out.activation != "none" or post.grid != "model"):
            raise ValueError(
                "output.kind 'instances' needs output.activation 'none' and postprocess.grid "
                "'model' (instance ids are neither activated nor interpolated)"
            )
        if post.method.startswith("hovernet") and out.kind != "hovernet":
            raise ValueError(
                f"postprocess.method '{post.method}' needs h/v maps: output.kind is "
                f"'{out.kind}', not 'hovernet'"
            )
        if out.kind == "hovernet" and out.n_types != len(self.classes):
            raise ValueError(
                f"output.n_types = {self.output.n_types} but {len(self.classes)} classes listed"
            )

    @property
    def train_datasets(self) -> list[str]:
        return list(self.training.datasets)

    @property
    def training_set(self) -> str:
        """The training set's name in comparisons (see :class:`Training`)."""
        return self.training.label or "+".join(self.training.datasets)

    @property
    def family(self) -> str:
        """The model family in comparisons: ``training.family``, else the architecture, else
        ``<kind>:<id>`` (a TorchScript or ONNX model is a family of its own)."""
        return self.training.family or self.architecture or f"{self.kind}:{self.id}"


class LoadedCard:
    """A validated card with the file it came from (to resolve relative weights)."""

    def __init__(self, card: ModelCard, path: Path | None):
        self.card = card
        self.path = path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.card, name)

    @property
    def weights_path(self) -> Path:
        f = self.card.weights.file
        if f.startswith("data:"):
            return config.data_root() / f[len("data:") :]
        p = Path(f).expanduser()
        if p.is_absolute():
            return p
        base = self.path.parent if self.path is not None else Path.cwd()
        try:
            return (base / p).resolve()
        except (RuntimeError, OSError):  # a symlink loop: the path as written, found unusable
            return base / p

    def __repr__(self) -> str:
        return f"LoadedCard({self.card.id!r}, {self.path})"


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "card"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_card(data: Any, path: Path | None = None) -> LoadedCard:
    """Validate a card given as a mapping (``path`` is used for messages and relative weights)."""
    where = path if path is not None else Path("<card>")
    if not isinstance(data, dict):
        raise DataError(where, "a model card must be a YAML mapping")
    try:
        return LoadedCard(ModelCard.model_validate(data), path)
    except ValidationError as e:
        raise DataError(where, f"invalid model card: {_format(e)}") from None


def load_card(path: str | Path) -> LoadedCard:
    """Read and validate a model card YAML file."""
    p = Path(path)
    data = load_yaml(read_text(p, "model card"), p)
    return parse_card(data, p.resolve())


def dump_card(card: ModelCard) -> str:
    """The card as YAML text (fields in schema order, defaults written out)."""
    return yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
