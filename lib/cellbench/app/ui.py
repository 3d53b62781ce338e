"""Streamlit plumbing shared by the pages: error guard, cached data access, figure export.

No analysis here: pages call the library and render; this module only adds caching at the
data boundary (keyed by what is on disk, so new runs show up) and the common widgets.

It is past 600 lines because every cache key of the app lives here (the store's signature,
the catalog paths, the listing's state), and the work outside a page's run that feeds those
caches (thumbnails drawn for the tile server, the first listing, keep jobs, prefetches) must
share them; the widgets built on them
(figure export, job progress, the deep-zoom iframe) are short. Review tools of the Results
page are in :mod:`cellbench.app.review`, the tile endpoint in :mod:`cellbench.app.tiles`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from cellbench.core import config
from cellbench.core.errors import CellbenchError
from cellbench.runs.store import RUN_COLUMNS

#: Folders (``os.pathsep``-separated) a path typed into the app may lie in besides the data
#: root and the workspace; ``*`` lifts the confinement (a single-user desktop). Read when the
#: server starts a page run, from the environment the app was started with.
PATHS_ENV = "CELLBENCH_APP_PATHS"


def allowed_roots() -> list[Path] | None:
    """The folders a path typed into the app must lie in, or None when unconfined."""
    import os

    extra = os.environ.get(PATHS_ENV, "").strip()
    if extra == "*":
        return None
    roots = [config.data_root(), config.home()]
    roots += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
    return [Path(os.path.realpath(r)) for r in roots]


def confined(typed: str, what: str = "path") -> Path:
    """``typed`` (a path, or a glob / ``{stem}`` pattern: its fixed leading folders count) as
    a path inside the data root, the workspace or the folders of ``CELLBENCH_APP_PATHS``.

    A path outside them is refused with the same message whether or not it exists, so the
    app cannot be used to probe the server's file system. Symbolic links are followed before
    the check (a link out of the data root leads outside)."""
    import os
    import re

    text = typed.strip()
    p = Path(text).expanduser()
    roots = allowed_roots()
    if roots is None:
        return p
    fixed = re.split(r"[*?\[{]", str(p), maxsplit=1)[0]  # the part before any pattern
    base = Path(os.path.realpath(fixed or "."))
    if not any(base == r or r in base.parents for r in roots):
        raise CellbenchError(
            f"{what}: not inside the data root or the workspace, the folders this app may read "
            f"(start it with {PATHS_ENV}=<folders> to allow more)"
        )
    return p


@contextlib.contextmanager
def guard(what: str = "This page"):
    """Show errors as a message in the page, never as a traceback."""
    try:
        yield
    except CellbenchError as e:
        st.error(as_text(e))
    except KeyError as e:
        st.error(as_text(e.args[0] if e.args else e))
    except Exception as e:  # noqa: BLE001 - the app never shows a traceback
        st.error(f"{what} hit an unexpected problem: {type(e).__name__}: {as_text(e)}")


def as_text(value: Any) -> str:
    """``value`` as inert HTML/Markdown: every character other than ASCII letters, digits and
    spaces becomes a numeric entity, so user strings (class names, file names, deep-link
    parameters) always render as the text they are, never as markup or script; and an
    invisible word joiner (U+2060) after ``://``'s colon, ``www`` and ``@`` keeps Markdown's
    autolinking from making a link of a URL or an address in it."""
    text = str(value)
    for raw, inert in (("://", ":\u2060//"), ("www.", "www\u2060."), ("@", "@\u2060")):
        text = text.replace(raw, inert)
    return "".join(c if (c.isascii() and c.isalnum()) or c == " " else f"&#{ord(c)};" for c in text)


def color_legend(items, prefix: str = "") -> None:
    """A caption of coloured squares with names: ``items`` = ``(name, (r, g, b))`` pairs.

    The only place the app renders HTML: names pass through :func:`as_text`, colours are
    formatted from integers; ``prefix`` is the page's own (literal) text.
    """
    from cellbench.viz.overlay import hex_color

    html = " · ".join(
        f"<span style='color:{hex_color(color)}'>■</span> {as_text(name)}" for name, color in items
    )
    st.caption(prefix + html, unsafe_allow_html=True)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """A small read-only table as Markdown (no dataframe widget: the Home page stays light).

    Cells pass through :func:`as_text`, so user strings render as the text they are.
    """
    if not rows:
        return
    cols = columns or list(rows[0])

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        return as_text(v)

    lines = [
        "| " + " | ".join(as_text(c) for c in cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows),
    ]
    st.markdown("\n".join(lines))


def header(title: str, caption: str) -> None:
    st.set_page_config(page_title=f"cellbench · {title}", layout="wide")
    st.title(title)
    st.caption(caption)


# -- cached data ------------------------------------------------------------------------------


def _paths() -> tuple[str, str, str]:
    """Cache key of the catalog: its file, the data root and the user catalog's state."""
    up = config.user_catalog_path()
    user = f"{up}:{up.stat().st_mtime_ns}" if up.is_file() else ""
    return str(config.catalog_path()), str(config.data_root()), user


@st.cache_resource(show_spinner=False)
def _catalog(cat_path: str, root: str, user: str = ""):
    from cellbench.data.catalog import load_catalog

    return load_catalog(cat_path, root)


def catalog():
    """The catalog (cached per catalog file and data root)."""
    return _catalog(*_paths())


@st.cache_data(show_spinner="Reading sample metadata ...")
def _sample_table(cat_path: str, root: str, user: str = "") -> pl.DataFrame:
    from cellbench.data.samples import sample_table

    return sample_table(_catalog(cat_path, root, user))


def sample_table(what: str = "This page") -> pl.DataFrame:
    """One row per local sample of every available dataset (cached). While the first listing
    of the local data runs, the page says so with its progress and stops here (``what``: the
    page or view that needs the table)."""
    if not listed(what):
        st.stop()
    return _sample_table(*_paths())


def warm() -> None:
    """Load what a page's first table and first figure load lazily: pandas and pyarrow behind
    ``st.dataframe`` (~0.5 s), plotly's validators (:func:`cellbench.viz.figures.warm`);
    run in the background (:func:`prefetch`) so that no page's first visit pays for them."""
    import importlib

    from streamlit import dataframe_util

    from cellbench.viz import figures

    importlib.import_module("pandas")  # st.dataframe imports it on first use (~0.5 s)
    dataframe_util.convert_anything_to_arrow_bytes(pl.DataFrame({"a": [1], "b": ["x"]}))
    figures.warm()


def prefetch_sample_table() -> None:
    """Read the sample table into the cache in the background (:func:`prefetch`) once the
    local data is listed (never while the listing runs: that would list it twice)."""
    try:
        ready = not listing()["pending"]
    except Exception:  # noqa: BLE001 - e.g. no catalog: the page that needs it says why
        return
    if ready:
        prefetch(_sample_table, [_paths()])


@st.cache_data(show_spinner=False)
def _catalog_rows(cat_path: str, root: str, user: str = "", listed: tuple = ()) -> list[dict]:
    from cellbench.data.samples import catalog_rows

    return catalog_rows(_catalog(cat_path, root, user), cached_only=True)


def catalog_rows() -> list[dict]:
    """The catalog's summary rows, never waiting on a listing: a dataset not listed yet has
    ``n_samples`` None while the background listing runs (:func:`listing`)."""
    now = listing()
    return _catalog_rows(*_paths(), tuple(now["pending"]) + tuple(now["failed"]))


_LISTING_RETRIED: set[tuple] = set()


def listing() -> dict[str, Any]:
    """The background listing of the local data (:mod:`cellbench.data.listing`), started
    when datasets are not listed yet (failed ones retried once per server process)."""
    import os

    from cellbench.data import listing as lister

    key = _paths()
    first = key not in _LISTING_RETRIED
    _LISTING_RETRIED.add(key)
    if os.environ.get("CELLBENCH_PREFETCH", "1") == "0":  # no background work (tests)
        if first or lister.pending(catalog()):
            lister.list_all(catalog())
        return lister.status(catalog())
    return lister.start(catalog(), retry=first)


def listed(what: str) -> bool:
    """True when every available dataset is listed; else the listing's progress, polled each
    second (the page reruns once it is done). ``what``: the page or view that needs it."""
    now = listing()
    if not now["pending"] and not now["running"]:
        for ds, err in now["failed"].items():
            st.warning(f"Dataset {as_text(ds)} could not be listed: {as_text(err)}")
        return True

    @st.fragment(run_every=1.0)
    def progress() -> None:
        from cellbench.data import listing as lister

        got = lister.status(catalog())
        if not got["running"]:
            st.rerun(scope="app")
            return
        total = max(got["total"], 1)
        done = total - len(got["pending"])
        text = f"Listing the local data for the first time: {done} of {total} datasets"
        if got["current"]:
            text += f" (now {as_text(got['current'])})"
        st.progress(done / total, text=text + " · later starts read the cached listing")

    st.info(f"{what} will appear once the local data is listed (once, in the background).")
    progress()
    return False


def store():
    from cellbench.runs.store import Store

    return Store()


def store_signature() -> tuple:
    """What is on disk in the store (file names and modification times): the cache key."""
    s = store()
    sig = []
    for root in s.roots():
        for d in (root / "runs", root / "metrics"):
            for p in sorted(d.rglob("*")) if d.is_dir() else []:
                if p.suffix in (".json", ".parquet") and not p.name.startswith("."):
                    sig.append((str(p), p.stat().st_mtime_ns))
    return (str(s.root), tuple(sig))


@st.cache_data(show_spinner=False, max_entries=8)
def runs_table(sig: tuple) -> pl.DataFrame:
    return store().runs()


def runs() -> pl.DataFrame:
    """The runs table (cached until the store changes)."""
    return runs_table(store_signature())


@st.cache_data(show_spinner="Summarising ...", max_entries=64)
def _summary(sig: tuple, run_ids: tuple, metric: str, by: tuple, cls: str | None, n_boot: int):
    from cellbench.analysis import group_summary

    return group_summary(store(), list(run_ids), metric, list(by), cls=cls, n_boot=n_boot)


def summary(run_ids, metric: str, by, cls: str | None = "all", n_boot: int = 1000) -> pl.DataFrame:
    """:func:`cellbench.analysis.group_summary`, cached until the store changes."""
    return _summary(store_signature(), tuple(run_ids), metric, tuple(by), cls, n_boot)


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics_of(sig: tuple, run_ids: tuple) -> tuple[list[str], list[str]]:
    lf = store().scan(list(run_ids)).filter(pl.col("level") == "sample")
    m = lf.select(pl.col("metric").unique()).collect()["metric"].to_list()
    c = lf.select(pl.col("class").unique()).collect()["class"].to_list()
    return sorted(m), sorted(c, key=lambda x: (x != "all", x))


@st.cache_data(show_spinner=False, max_entries=64)
def _distinct(sig: tuple, run_ids: tuple, keys: tuple) -> dict[str, int]:
    lf = store().scan(list(run_ids)).filter(pl.col("level") == "sample")
    have = [k for k in keys if k in lf.collect_schema().names()]
    if not have:
        return {}
    row = lf.select([pl.col(k).drop_nulls().n_unique() for k in have]).collect().row(0)
    return dict(zip(have, row, strict=True))


def distinct_values(run_ids, keys) -> dict[str, int]:
    """How many distinct non-null values each of ``keys`` takes over the runs' samples (a
    group-by with one group says nothing: the pages default to one with several)."""
    return _distinct(store_signature(), tuple(run_ids), tuple(keys))


def metrics_of(run_ids) -> tuple[list[str], list[str]]:
    """Metric names and classes stored for the runs (``all`` first)."""
    return _metrics_of(store_signature(), tuple(run_ids))


@st.cache_data(show_spinner=False, max_entries=32)
def _values(sig: tuple, run_ids: tuple, metric: str, cls: str) -> pl.DataFrame:
    from cellbench.analysis import sample_values

    return sample_values(store(), list(run_ids), metric, cls).collect()


def values(run_ids, metric: str, cls: str = "all") -> pl.DataFrame:
    """Per-sample rows of one metric (cached until the store changes)."""
    return _values(store_signature(), tuple(run_ids), metric, cls)


@st.cache_data(show_spinner=False, max_entries=16)
def _pooled(sig: tuple, run_id: str, by: str) -> pl.DataFrame:
    from cellbench.analysis import pooled_groups

    return pooled_groups(store(), run_id, by)


def pooled(run_id: str, by: str) -> pl.DataFrame:
    """:func:`cellbench.analysis.pooled_groups` (the preset's figure per group), cached."""
    return _pooled(store_signature(), run_id, by)


@st.cache_data(show_spinner=False, max_entries=16)
def _analysis(sig: tuple, run_id: str) -> dict:
    from cellbench.analysis.detail import run_analysis

    return run_analysis(store(), run_id)


def analysis(run_id: str) -> dict:
    """:func:`cellbench.analysis.detail.run_analysis` (confusion, curves), cached."""
    return _analysis(store_signature(), run_id)


def prefetch(fn, calls) -> None:
    """Fill the cache of ``fn`` (an ``st.cache_data`` function) for ``calls`` (argument tuples)
    in a background thread, after the page has rendered what the user asked for: the next
    choice (another metric, say) is then served from the cache instead of the rerun.

    One prefetch runs at a time per function; errors are left for the page to report when the
    user asks for that choice. ``CELLBENCH_PREFETCH=0`` turns it off (tests).
    """
    import os

    if os.environ.get("CELLBENCH_PREFETCH", "1") == "0":
        return
    name = f"cellbench-prefetch-{getattr(fn, '__qualname__', fn)}"
    if any(t.name == name for t in threading.enumerate()):
        return

    def work():
        import time

        # lower priority, and a moment for the user's next choice to go first: a prefetch
        # must not slow the interaction it is preparing for
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        time.sleep(1.0)
        for args in calls:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001, S112 - reported when the user asks for it
                continue

    # no script context on purpose: the cached function's spinner must not show in the page
    threading.Thread(target=work, name=name, daemon=True).start()


# -- widgets ----------------------------------------------------------------------------------


def geojson_button(
    label: str,
    dataset: str,
    sample_id: str,
    what: str = "gt",
    run: dict[str, Any] | None = None,
    key: str = "geojson",
    features: list | None = None,
    **kw: Any,
) -> None:
    """A download of one sample's QuPath GeoJSON (:func:`cellbench.qupath.geojson.
    sample_features`: ``gt``, a run's ``pred`` or its ``errors``), built when clicked unless
    ``features`` are given."""

    def doc() -> bytes:
        from cellbench.qupath.geojson import sample_features

        feats = features
        if feats is None:
            feats = sample_features(catalog(), dataset, sample_id, what, run, store())
        return json.dumps({"type": "FeatureCollection", "features": feats}).encode()

    st.download_button(
        label,
        doc,
        file_name=f"{sample_id}_{what}.geojson",
        mime="application/geo+json",
        key=key,
        **kw,
    )


def link(page: str, label: str, params: dict[str, str] | None = None, icon: str | None = None):
    """A link to another page of the app (``page`` = its file under ``pages/``) with query
    parameters; a plain link where the page runs outside the app's navigation (tests)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(f"pages/{page}", label=label, icon=icon, query_params=params)
    except StreamlitAPIException:
        from urllib.parse import urlencode

        path = page.split("_", 1)[1].removesuffix(".py")
        st.markdown(f"[{as_text(label)}](/{path}?{urlencode(params or {})})")


def show_figure(
    fig, data: pl.DataFrame | None = None, key: str = "fig", name: str = "figure", on_click=None
):
    """A figure with downloads: SVG/PDF/PNG at a publication size, and its data.
    ``on_click(points)``: called (before the rerun) with the points a click selected."""
    from cellbench.viz.figures import (
        PUBLICATION_SIZES,
        FigureTooSmall,
        export_figure,
        frame_bytes,
        print_layout,
    )

    if on_click is None:
        st.plotly_chart(fig, key=f"{key}_chart")
    else:

        def clicked() -> None:
            event = st.session_state.get(f"{key}_chart") or {}
            points = (event.get("selection") or {}).get("points") or []
            if points:
                on_click(points)

        st.plotly_chart(fig, key=f"{key}_chart", on_select=clicked, selection_mode="points")
    with st.expander("Export this figure"):
        c1, c2, c3 = st.columns([2, 1, 1])
        size = c1.selectbox("Size", list(PUBLICATION_SIZES), key=f"{key}_size")
        fmt = c2.selectbox("Format", ["svg", "pdf", "png"], key=f"{key}_fmt")
        w, h = PUBLICATION_SIZES[size]
        mime = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}[fmt]
        try:
            if not any(t.type == "image" for t in fig.data):
                _, h_print = print_layout(fig, w, h)
                if h_print > h + 0.5:
                    c1.caption(f"Laid out for print: {w:g} x {h_print:.0f} mm (taller to fit).")
            c3.download_button(
                f"Download {fmt.upper()}",
                lambda: export_figure(fig, fmt, w, h),
                file_name=f"{name}.{fmt}",
                mime=mime,
                key=f"{key}_dl",
            )
        except FigureTooSmall as e:
            c3.warning(f"Not at this size: {e}.")
        if data is not None:
            d1, d2 = st.columns(2)
            d1.download_button(
                "Data (CSV)",
                lambda: frame_bytes(data, "csv"),
                file_name=f"{name}.csv",
                mime="text/csv",
                key=f"{key}_csv",
            )
            d2.download_button(
                "Data (parquet)",
                lambda: frame_bytes(data, "parquet"),
                file_name=f"{name}.parquet",
                key=f"{key}_pq",
            )


def run_label(r: dict[str, Any]) -> str:
    """A short readable name for a run."""
    split = f"/{r['split']}" if r.get("split") else ""
    return (
        f"{r['model_id']} → {r['test_dataset']}{split} ({r.get('preset')}, n={r.get('n_samples')})"
    )


def run_labels(runs: pl.DataFrame) -> dict[str, str]:
    """``{run_id: label}``, unique (the run id's hash is added where labels collide)."""
    rows = list(runs.iter_rows(named=True))
    base = [run_label(r) for r in rows]
    out = {}
    for r, b in zip(rows, base, strict=True):
        out[r["run_id"]] = b if base.count(b) == 1 else f"{b} #{r['run_id'][-6:]}"
    return out


def data_hint() -> str:
    root = config.data_root()
    return f"data root `{root}`" + ("" if Path(root).is_dir() else " (missing)")


@st.cache_data(show_spinner=False, max_entries=32)
def _error_image(sig: tuple, run_id: str, sample_id: str, max_side: int | None):
    from cellbench.viz.review import error_view

    return error_view(store().get_run(run_id), sample_id, catalog(), store(), max_side)


def error_image(run_id: str, sample_id: str, max_side: int | None = None):
    """:func:`cellbench.viz.review.error_view` of a stored run (cached); None while the
    sample's prediction is not at hand (the run's keep job makes it: :func:`keep_job`)."""
    from cellbench.viz.review import prediction_ready

    if not prediction_ready(store().get_run(run_id), sample_id):
        return None
    return _error_image(store_signature(), run_id, sample_id, max_side)


def keep_job(run_id: str, sample_ids) -> dict[str, Any] | None:
    """The background job keeping the run's predictions of ``sample_ids``, started here when
    some are missing (:func:`cellbench.runs.keep.ensure`); None when all are at hand."""
    from cellbench.runs import keep

    return keep.ensure(store().get_run(run_id), list(sample_ids))


def wait_for_predictions(run_id: str, sample_ids, what: str) -> bool:
    """True when the run's predictions of ``sample_ids`` are at hand; else the keep job's
    progress (Cancel, Retry with its error), polled each second while it runs, the whole
    page rerun once it is complete. ``what``: the view that waits, for the message."""
    job = keep_job(run_id, sample_ids)
    if job is None:
        return True
    active = job["status"] in ("queued", "loading", "running")

    @st.fragment(run_every=1.0 if active else None)
    def progress() -> None:
        now = keep_job(run_id, sample_ids)
        if now is None:
            st.rerun(scope="app")
            return
        st.info(
            f"{what} needs the model's predictions, which this run has not kept: a background "
            "job computes and keeps them once (the page stays usable; later looks are instant)."
        )
        job_row(now, prefix="keep_")

    progress()
    return False


def _thumb(sig: tuple, run_id: str, sample_id: str, errors: bool, side: int):
    """One thumbnail: the run's TP / FP / FN (``errors``: kept on disk once drawn) or the
    sample's ground truth."""
    if errors:
        from cellbench.runs import predcache

        img = predcache.load_thumb(run_id, sample_id, side)
        if img is None:
            img = _error_image(sig, run_id, sample_id, side)[0]
            predcache.save_thumb(run_id, sample_id, side, img)
        return img
    from cellbench.data.samples import load_sample
    from cellbench.viz.overlay import sample_overlay

    rec = store().get_run(run_id)
    cat = catalog()
    s = load_sample(cat, rec["test_dataset"], sample_id)
    return sample_overlay(s, cat.get(rec["test_dataset"]).classes, max_side=side)


#: Thumbnails of this server process: ``(store signature, run, sample, side, errors) ->
#: image`` (False: cannot be drawn), drawn when the grid's browser asks for them
#: (:func:`thumb_set`).
_THUMBS: dict[tuple, Any] = {}


def _draw(key: tuple) -> Any:
    """Draw one thumbnail now (False where it cannot be drawn, e.g. no local data)."""
    sig, run_id, sid, side, errors = key
    try:
        return _thumb(sig, run_id, sid, errors, side)
    except Exception:  # noqa: BLE001 - the reason shows when the sample is opened
        return False


@st.cache_data(show_spinner=False, max_entries=16)
def _grid(sig: tuple, run_id: str) -> pl.DataFrame:
    from cellbench.analysis.grid import sample_grid

    return sample_grid(store(), run_id)


def grid(run_id: str) -> pl.DataFrame:
    """:func:`cellbench.analysis.grid.sample_grid` of a run, cached until the store changes."""
    return _grid(store_signature(), run_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _run_table(sig: tuple) -> pl.DataFrame:
    from cellbench.analysis import run_table

    return run_table(store())


def run_table() -> pl.DataFrame:
    """:func:`cellbench.analysis.run_table` (coverage, sample set), cached."""
    return _run_table(store_signature())


def runs_overview(runs: pl.DataFrame, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    """The runs table's columns a page shows (those present)."""
    return runs.select([c for c in (*RUN_COLUMNS, *extra) if c in runs.columns])


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def job_progress(job: dict[str, Any], where=None) -> None:
    """A job's progress bar: what it evaluates, its state, done / total, throughput, ETA."""
    from cellbench.runs.jobs import job_label

    total = job.get("total") or 1
    done = job.get("done") or 0
    state = job["status"]
    if job.get("reused"):
        state = "done: the same request was evaluated before, nothing computed"
    elif state == "complete":
        state = "done"
    label = job.get("label") or job_label(job.get("spec") or {})
    parts = [label, state, f"{done}/{total}"]
    if job["status"] == "running":
        if job.get("rate"):
            unit = "tiles" if job.get("kind") == "predict" else "samples"
            parts.append(f"{job['rate']:.2f} {unit}/s")
        if job.get("eta_s"):
            parts.append(f"ETA {_duration(job['eta_s'])}")
        if job.get("sample_id"):
            parts.append(str(job["sample_id"]))
    if job.get("error"):
        parts.append(str(job["error"]))
    (where or st).progress(min(1.0, done / total), text=" · ".join(parts))


def job_row(job: dict[str, Any], widths=(5, 1), prefix: str = ""):
    """One job: its progress bar, with Cancel while it runs, Resume once stopped and Retry once
    failed (the error shown); returns
    the row's columns when the job is complete (for what a finished job offers), else None."""
    from cellbench.runs.jobs import cancel_job, resume_job

    c = st.columns(list(widths))
    job_progress(job, c[0])
    jid = job["job_id"]
    if job["status"] in ("running", "queued", "loading"):
        if c[1].button("Cancel", key=f"{prefix}cancel_{jid}"):
            cancel_job(jid)
            st.rerun(scope="fragment")
    elif job["status"] in ("interrupted", "cancelled", "failed"):
        # a failure is retried (its error is in the bar); a stopped job resumes
        what = "Retry" if job["status"] == "failed" else "Resume"
        if c[1].button(what, key=f"{prefix}resume_{jid}"):
            resume_job(jid)
            st.rerun(scope="fragment")
    elif job["status"] == "complete":
        return c
    return None


@st.cache_data(show_spinner="Looking at the slides ...", ttl=600)
def slides(folder: str) -> list:
    """The slides under ``folder`` (:func:`cellbench.viz.slide.list_slides`), kept 10 min:
    opening every slide once is the slow part of the pages that offer them."""
    from cellbench.viz import slide as wsi

    return wsi.list_slides(folder)


@st.cache_resource
def devices() -> list[str]:
    """``cpu``, and ``cuda`` where a GPU is usable; torch (1-2 s to import) is only asked
    where an NVIDIA driver is present."""
    import os

    if not any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl")):
        return ["cpu"]
    import torch

    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def deep_zoom(
    source,
    objects: list[dict[str, Any]] | None = None,
    layers: dict[str, str] | None = None,
    title: str = "",
    hidden: list[str] | None = None,
    mpp: float | None = None,
    height: int = 620,
) -> None:
    """The deep-zoom viewer (OpenSeadragon, :mod:`cellbench.app.tiles`) of a slide file
    (a confined path) or an image array, with viewer objects (:mod:`cellbench.viz.deepzoom`)
    in toggleable layers; wheel zoom to full resolution and beyond, drag to pan, an overview
    map, click an object for its class, probability and measurements."""
    from pathlib import Path as _P

    from cellbench.app import tiles

    reg = tiles.REGISTRY
    src = reg.slide(source) if isinstance(source, str | _P) else reg.image(source, mpp)
    objs = objects or []
    lay = layers if layers is not None else {o["layer"]: "" for o in objs}
    view = reg.view(tiles.View(src, objs, lay, title, list(hidden or [])))
    st.iframe(f"{tile_base()}viewer/{view}", height=height)


def tile_base() -> str:
    """The URL prefix of this process's tile server (:mod:`cellbench.app.tiles`) as the
    browser reaches it: the server is started on the interface Streamlit listens on, and a
    browser on a lab network reaches it by the name it used for the app."""
    from cellbench.app import tiles

    bind = st.get_option("server.address") or ""
    srv = tiles.server(bind or "127.0.0.1")
    host = None
    if bind in ("0.0.0.0", "::"):
        with contextlib.suppress(Exception):
            host = (st.context.headers.get("Host") or "").rsplit(":", 1)[0] or None
    return srv.base(host)


def thumb_urls(what: list, sample_ids: list[str], draw) -> str:
    """Register thumbnails with the tile server: ``draw(sample id, errors)`` makes one (an RGB
    array, None where it cannot be drawn) when the browser first asks for it. ``what``
    names what is drawn (JSON-able; one registration per distinct ``what`` and ids). The URL
    prefix of thumbnail ``k`` (``<prefix><k>_<e|t>.jpg``: the run's errors or the ground
    truth) is returned."""
    from cellbench.app import tiles

    digest = hashlib.sha256(json.dumps([what, sample_ids], default=str).encode())
    key = tiles.REGISTRY.thumb_set(digest.hexdigest()[:24], tiles.Thumbs(list(sample_ids), draw))
    return f"{tile_base()}thumb/{key}/"


def thumb_set(run_id: str, sample_ids: list[str], side: int = 256) -> str:
    """:func:`thumb_urls` of ``sample_ids`` in run ``run_id``: each drawn on its first
    request by :func:`_thumb` (an error thumbnail kept on disk is read back, else drawn and
    kept), squared, and kept in this process."""
    from cellbench.viz.overlay import square

    sig = store_signature()

    def draw(sid: str, errors: bool):
        key = (sig, run_id, sid, side, errors)
        img = _THUMBS.get(key)
        if img is None:
            img = _draw(key)
            if len(_THUMBS) > 4096:
                _THUMBS.clear()
            _THUMBS[key] = img
        return None if img is False else square(img)

    return thumb_urls([sig, run_id, side], sample_ids, draw)


@st.cache_data(show_spinner="Matching every object of the run ...", max_entries=8)
def _object_table(sig: tuple, run_id: str) -> pl.DataFrame:
    from cellbench.analysis.objects import object_table

    return object_table(store().get_run(run_id), catalog(), store())


def object_table(run_id: str) -> pl.DataFrame:
    """:func:`cellbench.analysis.objects.object_table` of a run, cached until the store
    changes (needs its predictions at hand: :func:`wait_for_predictions`)."""
    return _object_table(store_signature(), run_id)
