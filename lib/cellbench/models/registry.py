"""The model registry, from three places (in this order; duplicate ids are an error):

- bundled checkpoints: ``models/<id>/card.yaml`` in the checkout (with their weights);
- the user's: ``$CELLBENCH_HOME/models/<id>/card.yaml``;
- bioimage.io models found in the data root: ``$CELLBENCH_DATA/models/*/bioimageio.yaml`` (or
  ``rdf.yaml``), one card per TorchScript / ONNX weights, generated from the description on
  each listing (:func:`card_from_bioimageio`), so nothing of the data is copied.

Also: model cards from bioimage.io ``rdf``/``bioimageio.yaml`` descriptions, and saving a
built-in architecture's checkpoint together with its card.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cellbench.core import config
from cellbench.core.atomic import write_bytes_atomic
from cellbench.core.errors import DataError
from cellbench.core.safety import check_relative, load_yaml, read_text
from cellbench.models.card import LoadedCard, dump_card, load_card, parse_card

BUNDLED_DIR = config.REPO_DIR / "models"


def user_dir() -> Path:
    """Folder of the user's models (``$CELLBENCH_HOME/models``)."""
    return config.home() / "models"


def model_dirs() -> list[Path]:
    return [BUNDLED_DIR, user_dir()]


def data_root_cards(problems: list[DataError] | None = None) -> list[LoadedCard]:
    """Cards of the bioimage.io models under ``$CELLBENCH_DATA/models`` (generated).

    A description that cannot be read is skipped and added to ``problems`` (raised when
    ``problems`` is None).
    """
    d = config.data_root() / "models"
    out = []
    for rdf in sorted(d.glob("*/bioimageio.yaml")) + sorted(d.glob("*/rdf.yaml")):
        try:
            for kind in _bioimageio_kinds(rdf):
                out.append(parse_card(card_from_bioimageio(rdf, kind), rdf.resolve()))
        except DataError as e:
            if problems is None:
                raise
            problems.append(e)
    return out


def scan_models() -> tuple[list[LoadedCard], list[DataError]]:
    """Every valid model card and the problems of the invalid ones.

    Cards are read from the bundled, user and data-root places (module docstring). A malformed
    card, an unreadable description or a second card with an id already taken is reported in the
    problems (naming its file) and left out; the other models stay usable.
    """
    problems: list[DataError] = []
    saved = []
    for d in model_dirs():
        for p in sorted(d.glob("*/card.yaml")) if d.is_dir() else []:
            try:
                saved.append(load_card(p))
            except DataError as e:
                problems.append(e)
    cards: dict[str, LoadedCard] = {}
    for c in [*saved, *data_root_cards(problems)]:
        if c.id in cards:
            problems.append(
                DataError(c.path, f"model id '{c.id}' is also defined in {cards[c.id].path}")
            )
            continue
        cards[c.id] = c
    return list(cards.values()), problems


def _declares_id(path: Path, model_id: str) -> bool:
    """Whether an invalid card's text declares ``id: model_id`` (its folder may be named
    otherwise): then its own problem, not "no such model", is the answer."""
    import re

    try:
        text = path.read_text(errors="replace")[:20000]
    except OSError:
        return False
    return re.search(rf"(?m)^id:\s*['\"]?{re.escape(model_id)}['\"]?\s*(#.*)?$", text) is not None


def list_models() -> list[LoadedCard]:
    """Every valid registered model card (see :func:`scan_models` for the invalid ones)."""
    return scan_models()[0]


def get_model(model_id: str) -> LoadedCard:
    """The card of a registered model (``KeyError`` listing the known ids).

    When the id's own card is invalid, its problem is raised instead.
    """
    cards, problems = scan_models()
    for c in cards:
        if c.id == model_id:
            return c
    for e in problems:
        if e.path.parent.name == model_id or _declares_id(e.path, model_id):
            raise e
    known = ", ".join(c.id for c in cards) or "none"
    raise KeyError(f"no model '{model_id}' in the registry (known: {known})")


def is_available(card: LoadedCard) -> bool:
    """Whether the card's weights file is present (data-root weights may be absent)."""
    return card.weights_path.is_file()


def model_row(card: LoadedCard) -> dict[str, Any]:
    """A flat summary of a card (for tables and ``cellbench models list --json``)."""
    return {
        "id": card.id,
        "name": card.name,
        "kind": card.kind,
        "architecture": card.architecture,
        "channels": card.input.channels,
        "mpp": card.input.mpp,
        "output": card.output.kind,
        "classes": [c.name for c in card.classes],
        "train_datasets": card.train_datasets,
        "weights": str(card.weights_path),
        "sha256": card.weights.sha256,
        "available": is_available(card),
        "source": _source(card),
        "card": str(card.path),
    }


def _source(card: LoadedCard) -> str:
    p = card.path
    if p is None:
        return "unsaved"
    if BUNDLED_DIR in p.parents:
        return "bundled"
    return "user" if user_dir() in p.parents else "data root (bioimage.io)"


def load_predictor(
    model, device: str = "cpu", batch_size: int = 8, amp: bool = True, compile: bool = False
):
    """A :class:`~cellbench.models.inference.Predictor` for a model id or card (``compile``:
    ``torch.compile`` the network, see :class:`~cellbench.models.backends.TorchBackend`)."""
    from cellbench.models.backends import load_backend
    from cellbench.models.inference import Predictor

    card = get_model(model) if isinstance(model, str) else model
    backend = load_backend(card, device=device, amp=amp, compile=compile)
    return Predictor(card, backend, batch_size=batch_size)


# -- bioimage.io ------------------------------------------------------------------------------


def _weights_ref(path: Path) -> str:
    """``data:<relative>`` for files under the data root, else the absolute path."""
    root = config.data_root()
    try:
        return "data:" + path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def card_from_bioimageio(path: str | Path, kind: str = "torchscript") -> dict[str, Any]:
    """A cellbench card (as a mapping) from a bioimage.io model description.

    Reads the facts the description states: name, licence, citation, input axes and size,
    ``zero_mean_unit_variance`` preprocessing, the halo, a sigmoid postprocessing (the network
    gives logits), and the ``torchscript`` or ``onnx`` weights with their sha256. Only
    single-channel 2D nucleus-foreground models with that preprocessing are supported.
    Instances come from the foreground by ``distance_watershed``.
    """
    p = Path(path)
    rdf = _read_rdf(p)
    try:
        return _card_from_rdf(rdf, p, kind)
    except DataError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, StopIteration) as e:
        raise DataError(
            p,
            f"unsupported bioimage.io description (format_version "
            f"{rdf.get('format_version', '?')}): needs 0.5 inputs/outputs with axes objects and "
            f"'{kind}' weights ({type(e).__name__}: {e})",
        ) from None


def _read_rdf(p: Path) -> dict[str, Any]:
    try:
        rdf = load_yaml(read_text(p, "bioimage.io description"), p) or {}
    except DataError as e:
        raise DataError(p, f"cannot read bioimage.io description: {e.problem}") from None
    if not isinstance(rdf, dict):
        raise DataError(p, "a bioimage.io description must be a YAML mapping")
    return rdf


def _card_from_rdf(rdf: dict[str, Any], p: Path, kind: str) -> dict[str, Any]:
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    w = rdf["weights"][kind]
    source = check_relative(w["source"], p, f"weights.{kind}.source")
    axes = inp["axes"]
    chan = next(a for a in axes if a.get("type") == "channel")
    if len(chan.get("channel_names", [])) != 1:
        raise DataError(p, "only single-channel models are supported")
    sizes = [a["size"] for a in axes if a.get("type") == "space"]
    if len(sizes) != 2 or not all(isinstance(s, int) for s in sizes):
        raise DataError(p, "expected two fixed spatial input sizes")
    pre = [s["id"] for s in inp.get("preprocessing", [])]
    if "zero_mean_unit_variance" not in pre:
        raise DataError(p, f"unsupported preprocessing {pre}")
    post = [s["id"] for s in out.get("postprocessing", [])]
    halo = max((a.get("halo", 0) for a in out["axes"] if a.get("type") == "space"), default=0)
    slug = p.parent.name.lower().replace(" ", "_")
    cite = "; ".join(c.get("text", "") for c in rdf.get("cite", []))
    return {
        "id": f"{slug}_{kind}",
        "name": f"{rdf['name']} ({kind})",
        "description": rdf.get("description", ""),
        "license": rdf.get("license", "unknown"),
        "citation": cite,
        "kind": kind,
        "weights": {"file": _weights_ref(p.parent / source), "sha256": w["sha256"]},
        "input": {
            "channels": "gray",
            "mpp": None,
            "normalization": "zero_mean_unit_variance",
            "eps": 1e-6,
            "tile": int(sizes[0]),
            "halo": int(halo),
            "fixed_shape": kind == "onnx",
            "multiple_of": 16,
        },
        "output": {
            "kind": "foreground",
            "activation": "sigmoid" if "sigmoid" in post else "none",
        },
        "postprocess": {"method": "distance_watershed", "threshold": 0.5, "min_size": 10},
        "training": {
            "datasets": ["dsb2018"] if "dsb2018" in rdf.get("tags", []) else [],
            "notes": f"bioimage.io training data: {rdf.get('training_data', {}).get('id', '?')}",
        },
        "provenance": f"generated by cellbench from {p.name} (format {rdf.get('format_version')})",
    }


def write_card(card: dict[str, Any] | LoadedCard, folder: Path) -> LoadedCard:
    """Validate a card and write it atomically as ``folder/card.yaml``."""
    loaded = card if isinstance(card, LoadedCard) else parse_card(card, folder / "card.yaml")
    path = folder / "card.yaml"
    write_bytes_atomic(path, dump_card(loaded.card).encode("utf-8"))
    return load_card(path)


def _bioimageio_kinds(path: Path) -> list[str]:
    """The weights formats of a bioimage.io description that cellbench loads."""
    weights = _read_rdf(path).get("weights")
    return [k for k in ("torchscript", "onnx") if isinstance(weights, dict) and k in weights]


def import_bioimageio(path: str | Path, dest: Path | None = None) -> list[LoadedCard]:
    """Register a bioimage.io model: one card per supported weights format (into the user dir)."""
    p = Path(path)
    kinds = _bioimageio_kinds(p)
    if not kinds:
        raise DataError(p, "no torchscript or onnx weights in the description")
    out = []
    for kind in kinds:
        card = card_from_bioimageio(p, kind)
        out.append(write_card(card, (dest or user_dir()) / card["id"]))
    return out


# -- built-in checkpoints ---------------------------------------------------------------------


def save_checkpoint(module, folder: str | Path, card: dict[str, Any]) -> LoadedCard:
    """Save a built-in architecture's ``state_dict`` as ``folder/weights.pt`` with its card.

    ``card`` holds every card field except ``weights`` and ``kind`` (filled in here). The
    weights are written first, atomically, then the card naming their sha256.
    """
    import torch

    from cellbench.models.backends import sha256_file

    folder = Path(folder)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
    weights = write_bytes_atomic(folder / "weights.pt", buf.getvalue())
    full = {
        **card,
        "kind": "cellbench",
        "weights": {"file": "weights.pt", "sha256": sha256_file(weights)},
    }
    return write_card(full, folder)
