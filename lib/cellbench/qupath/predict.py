"""The ``predict`` pipeline, end to end: inputs -> tiled inference and stitching
(:mod:`cellbench.runs.predict`) -> what QuPath reads (:mod:`cellbench.qupath.nuclei`,
:mod:`cellbench.qupath.project`).

One function, :func:`run_predict`, for the CLI (``cellbench predict``), background jobs
(:func:`submit_predict_job`, the app's Predict page) and notebooks. A :class:`PredictSpec`
names the model, the inputs (an image or slide, a folder of images, or a QuPath project's
images), how to tile, where the work runs (this process, with post-processing workers
overlapping the network, or a Dask cluster: tiles as tasks) and what to write:

- ``out`` ending in ``.geojson``: QuPath detections, with the nucleus table beside it
  (``<stem>.nuclei.parquet``);
- ``.parquet``: the nucleus table; ``.tif``: the instance map (one input);
- a folder: ``<stem>.tif`` instance maps (+ ``<stem>_class.tif``), ``geojson/<stem>.geojson``
  and ``nuclei.parquet`` (``evaluate --predictions FOLDER`` reads it);
- with ``qupath_project``: a new QuPath project in the folder, images referenced where they
  are; with ``project`` (a project's images as input): ``objects/<image name>.geojson`` and
  the import script, for ``Run for project`` in QuPath.

Finished tiles are kept under ``$CELLBENCH_HOME/cache/predict/`` (keyed by model, source and
tiling), so an interrupted prediction resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cellbench.core.errors import CellbenchError


@dataclass
class PredictSpec:
    """A prediction request (JSON-serialisable: background jobs store it as it is).

    Exactly one of ``image``, ``folder``, ``project`` is given. ``region`` is ``(x, y, w, h)``
    in level-0 pixels of a slide; ``tile`` and ``overlap`` are model pixels; ``mpp`` the
    input's microns per pixel when its metadata lacks it. ``executor``/``address``/``workers``
    as for evaluations (:mod:`cellbench.runs.executor`); ``post_workers``: post-processing
    processes overlapping the network in this process (GPU inference); ``compile``:
    ``torch.compile`` the network.
    """

    model: str
    out: str
    image: str | None = None
    folder: str | None = None
    project: str | None = None
    slide: bool = False
    region: tuple[int, int, int, int] | None = None
    tissue: bool = True
    mpp: float | None = None
    qupath_project: bool = False
    tile: int = 1024
    overlap: int = 128
    device: str = "cpu"
    batch_size: int = 8
    compile: bool = False
    executor: str = "local"
    address: str | None = None
    workers: int = 2
    post_workers: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region) if self.region else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PredictSpec:
        d = dict(d)
        if d.get("region"):
            d["region"] = tuple(int(v) for v in d["region"])
        return cls(**d)


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x,y,w,h"`` (level-0 pixels) as a tuple; None for None or an empty string."""
    if not text:
        return None
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise CellbenchError(f"region {text!r}: give x,y,w,h in level-0 pixels (w, h > 0)")
    return box  # type: ignore[return-value]


@dataclass
class PredictResult:
    """What a prediction found and wrote: the stitched nuclei per input, the files."""

    inputs: list[Path]
    nuclei: list = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def summary(self) -> list[str]:
        """One line per input: nuclei found, tiles predicted."""
        out = []
        for nuc in self.nuclei:
            m = nuc.meta
            out.append(
                f"{nuc.name}: {len(nuc.objects)} nuclei from {m['tiles_predicted']} of "
                f"{m['tiles']} tiles ({m['tile']} px, overlap {m['overlap']})"
            )
        return out


def input_paths(spec: PredictSpec) -> tuple[list[Path], dict[Path, str]]:
    """The images to predict and, for a QuPath project's images, their names in it.

    Raises :class:`CellbenchError` for a request without exactly one input, an empty folder,
    or a project none of whose images is on this machine (the others are skipped).
    """
    from cellbench.runs.predict import IMAGE_SUFFIXES

    given = [x for x in (spec.image, spec.folder, spec.project) if x]
    if len(given) != 1:
        raise CellbenchError("give exactly one of an image, a folder and a QuPath project")
    names: dict[Path, str] = {}
    if spec.project:
        from cellbench.qupath.project import read_project

        paths = []
        for im in read_project(Path(spec.project)).images:
            if im.path is not None and im.path.is_file():
                paths.append(im.path)
                names[im.path] = im.name
        if not paths:
            raise CellbenchError(f"{spec.project}: none of the project's images is found here")
        if Path(spec.out).suffix:
            raise CellbenchError("a project's images are written to a folder: give a folder")
        return paths, names
    if spec.folder:
        folder = Path(spec.folder)
        if not folder.is_dir():
            raise CellbenchError(f"{folder}: not a folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise CellbenchError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return paths, names
    path = Path(spec.image)
    if not path.is_file():
        raise CellbenchError(f"{path}: no such image")
    return [path], names


def open_input(spec: PredictSpec, path: Path, model_mpp: float | None):
    """The :class:`~cellbench.runs.predict.Source` of one input: a slide (by suffix, or
    ``slide`` / ``region`` given) or a plain image."""
    from cellbench.runs import predict as P

    if spec.slide or spec.region is not None or path.suffix.lower() in P.SLIDE_SUFFIXES:
        return P.slide_source(path, model_mpp, spec.region, spec.tissue, spec.mpp), True
    return P.image_source(path, model_mpp, spec.mpp), False


def run_predict(
    spec: PredictSpec,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PredictResult:
    """Predict every input of ``spec`` and write the outputs (see the module docstring).

    ``progress(name, done_tiles, total_tiles)`` after each tile; ``should_stop`` is checked
    between tiles (finished tiles are kept: the same request resumes).
    """
    from cellbench.core import config
    from cellbench.models.registry import get_model, load_predictor
    from cellbench.runs import predict as P

    paths, names = input_paths(spec)
    out = Path(spec.out)
    if len(paths) > 1 and (out.suffix.lower() in (".geojson", ".json", ".tif", ".tiff")):
        raise CellbenchError(f"{len(paths)} images need a folder (or a .parquet table) as output")
    card = get_model(spec.model)
    executor = None
    if spec.executor != "local" or spec.address:
        from cellbench.runs.executor import get_executor

        executor = get_executor(spec.executor, spec.address, max(1, spec.workers))
    # with workers the network runs there; here the model only gives the tiling (on the CPU)
    predictor = load_predictor(
        card,
        device=spec.device if executor is None else "cpu",
        batch_size=spec.batch_size,
        compile=spec.compile and executor is None,
    )
    work_root = config.home() / "cache" / "predict"
    result = PredictResult(paths)
    try:
        for path in paths:
            src, as_slide = open_input(spec, path, card.input.mpp)
            work = P._work_dir(work_root, card, src, spec.tile, spec.overlap)
            nuc = P.predict_source(
                predictor,
                src,
                spec.tile,
                spec.overlap,
                work,
                progress=None if progress is None else (lambda k, n, s=src.name: progress(s, k, n)),
                executor=executor,
                post_workers=spec.post_workers,
                device=spec.device,
                should_stop=should_stop,
                compile=spec.compile,
            )
            nuc.meta["slide"] = as_slide
            result.nuclei.append(nuc)
    finally:
        if executor is not None:
            executor.close()
    result.written = write_outputs(spec, paths, names, result.nuclei, card.classes or None)
    return result


def write_outputs(spec: PredictSpec, paths, names, results, classes) -> list[Path]:
    """Write the nuclei of every input as ``spec.out`` asks (see the module docstring)."""
    from cellbench.core.atomic import write_bytes_atomic
    from cellbench.qupath import nuclei as w

    out = Path(spec.out)
    suffix = out.suffix.lower()
    if spec.qupath_project:
        return [write_qupath_project(out, paths, results, classes)]
    if spec.project:
        from cellbench.qupath.project import GROOVY

        written = [
            w.write_geojson_file(nuc, out / "objects" / f"{names[p]}.geojson", classes)
            for p, nuc in zip(paths, results, strict=True)
        ]
        written.append(w.write_table(results, out / "nuclei.parquet", classes))
        written.append(write_bytes_atomic(out / "import_objects.groovy", GROOVY.encode()))
        return written
    if suffix in (".geojson", ".json"):
        w.write_geojson_file(results[0], out, classes)
        table = out.with_name(f"{out.stem}.nuclei.parquet")
        w.write_table(results, table, classes)
        return [out, table]
    if suffix == ".parquet":
        return [w.write_table(results, out, classes)]
    if suffix in (".tif", ".tiff"):
        return [w.write_instance_map(results[0], out)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for nuc in results:
        written.append(w.write_instance_map(nuc, out / f"{nuc.name}.tif"))
        written.append(w.write_geojson_file(nuc, out / "geojson" / f"{nuc.name}.geojson", classes))
    written.append(w.write_table(results, out / "nuclei.parquet", classes))
    return written


def write_qupath_project(out: Path, paths, results, classes) -> Path:
    """A new QuPath project of the predicted images with their nuclei."""
    from cellbench.data.imageio import image_size
    from cellbench.data.wsi import open_slide
    from cellbench.qupath.nuclei import nuclei_features
    from cellbench.qupath.project import write_project
    from cellbench.viz.overlay import class_colors

    images = []
    for p, nuc in zip(paths, results, strict=True):
        if nuc.meta.get("slide"):
            with open_slide(p) as s:
                width, height = s.dimensions
        else:
            width, height = image_size(p)
        images.append(
            {
                "path": p,
                "width": width,
                "height": height,
                "mpp": nuc.mpp,
                "features": nuclei_features(nuc, classes),
            }
        )
    cc = class_colors(classes or [])
    colours = {c.name: cc[c.id] for c in classes or []}
    write_project(out, images, colours or {"nucleus": (0, 200, 0)})
    return out / "project.qpproj"


# -- background jobs ---------------------------------------------------------------------------


def submit_predict_job(spec: PredictSpec, wait: bool = False) -> str:
    """Check a request and run it as a background job (:mod:`cellbench.runs.jobs`): progress
    in tiles, cancel between tiles, resume from the finished tiles. Returns the job id."""
    from cellbench.models.registry import get_model
    from cellbench.runs.jobs import submit_task

    paths, _ = input_paths(spec)  # a bad request fails here, not in the background
    get_model(spec.model)
    label = f"{spec.model} → {paths[0].name}" + (f" (+{len(paths) - 1})" if len(paths) > 1 else "")
    return submit_task(
        "predict",
        f"predict: {label}",
        spec.to_json(),
        entry="cellbench.qupath.predict:predict_job",
        total=None,
        wait=wait,
    )


def predict_job(job: dict[str, Any], report: Callable[..., None], should_stop) -> dict[str, Any]:
    """Job body (the jobs worker imports it by name): run the request, report tiles."""
    import time

    spec = PredictSpec.from_json(job["spec"])
    started: dict[str, tuple[float, int]] = {}

    def progress(name: str, k: int, n: int) -> None:
        t0, k0 = started.setdefault(name, (time.monotonic(), k))
        dt = time.monotonic() - t0
        rate = (k - k0) / dt if dt > 0 and k > k0 else None
        eta = (n - k) / rate if rate else None
        report(status="running", done=k, total=n, sample_id=name, rate=rate, eta_s=eta)

    res = run_predict(spec, progress, should_stop)
    return {
        "status": "complete",
        "written": [str(p) for p in res.written],
        "summary": res.summary(),
    }
