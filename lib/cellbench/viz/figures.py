"""Plotly figure builders shared by the app, notebooks and the CLI.

Each builder takes the polars frames the library's queries return and gives a
``plotly.graph_objects.Figure`` with one house style. :func:`export_figure` writes any of them
at a publication size (millimetres) as SVG, PDF or PNG (kaleido with the system's Chromium).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

FONT = "Arial, Helvetica, sans-serif"
#: Journal figure widths (mm) and a default height.
PUBLICATION_SIZES: dict[str, tuple[float, float]] = {
    "single column (89 mm)": (89, 70),
    "1.5 columns (120 mm)": (120, 85),
    "double column (183 mm)": (183, 110),
}
SCALE = "Viridis"
#: Okabe-Ito colours (colour-blind safe) for lines of different classes.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")


def plain(text: str) -> str:
    """``text`` shown as written by plotly, whose labels read a subset of HTML (``<b>``,
    ``<a href>``, ``<br>``): a sample id or class name with markup stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """The house style: white template, sans-serif, compact margins. ``title`` is shown as
    written (:func:`plain`; print layouts break it into lines later)."""
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT, "size": 12},
        title={"text": plain(title), "font": {"size": 14}} if title else None,
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 50},
        height=height,
    )
    return fig


def _labels(values) -> list[str]:
    return ["unknown" if v is None else str(v) for v in values]


def warm() -> None:
    """Build and serialise one small figure: plotly loads its trace validators and JSON
    encoders lazily (~0.15 s on first use), here instead of in the first page that draws."""
    fig = count_bar(pl.DataFrame({"x": ["a", "b", "a"]}), "x")
    fig.to_json()
    print_layout(fig, *next(iter(PUBLICATION_SIZES.values())))


def count_bar(df: pl.DataFrame, column: str, title: str | None = None) -> go.Figure:
    """Number of rows per value of ``column`` (null shown as "unknown"), largest first."""
    counts = df.group_by(column).len().sort("len", descending=True)
    fig = go.Figure(
        go.Bar(
            x=_labels(counts[column].to_list()), y=counts["len"].to_list(), marker_color="#0072B2"
        )
    )
    fig.update_yaxes(title="samples")
    fig.update_xaxes(title=column, type="category")
    return style(fig, title or f"Samples per {column}")


def histogram(
    df: pl.DataFrame, column: str, title: str | None = None, nbins: int = 20, unit: str = ""
) -> go.Figure:
    """Histogram of a numeric column (nulls left out; their number is in the title)."""
    s = df[column]
    n_null = s.null_count()
    vals = s.drop_nulls().to_list()
    fig = go.Figure(go.Histogram(x=vals, nbinsx=nbins, marker_color="#009E73"))
    fig.update_xaxes(title=f"{column}{f' ({unit})' if unit else ''}")
    fig.update_yaxes(title="samples")
    note = f" ({n_null} unknown)" if n_null else ""
    return style(fig, (title or f"{column} distribution") + note)


def _ci_text(r: dict) -> str:
    lo, hi = r.get("ci_low"), r.get("ci_high")
    ci = "" if lo is None or hi is None or math.isnan(lo) else f"<br>95% CI [{lo:.3f}, {hi:.3f}]"
    return f"{r['mean']:.3f}{ci}<br>n = {r['n']}"


def summary_heatmap(
    summary: pl.DataFrame, rows: str, cols: str, metric: str, title: str | None = None
) -> go.Figure:
    """Heatmap of group means (``group_summary`` output): mean and n in each cell, the 95% CI
    (where n >= 5) on hover."""
    rv = sorted(set(_labels(summary[rows].to_list())))
    cv = sorted(set(_labels(summary[cols].to_list())))
    z = np.full((len(rv), len(cv)), np.nan)
    hover = [["" for _ in cv] for _ in rv]
    for r in summary.iter_rows(named=True):
        i, j = rv.index(_labels([r[rows]])[0]), cv.index(_labels([r[cols]])[0])
        z[i, j] = r["mean"]
        hover[i][j] = _ci_text(r)
    ns = np.full(z.shape, -1)
    if "n" in summary.columns:
        for r in summary.iter_rows(named=True):
            ns[rv.index(_labels([r[rows]])[0]), cv.index(_labels([r[cols]])[0])] = r["n"]
    text = [
        [
            ("" if np.isnan(v) else f"{v:.3f}" + (f"<br>n={n}" if n >= 0 else ""))
            for v, n in zip(zr, nr, strict=True)
        ]
        for zr, nr in zip(z, ns, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cv,
            y=rv,
            colorscale=SCALE,
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{y} / %{x}<br>%{customdata}<extra></extra>",
            colorbar={"title": metric},
        )
    )
    fig.update_xaxes(title=cols, type="category")
    fig.update_yaxes(title=rows, type="category", autorange="reversed")
    return style(fig, title or f"Mean {metric} per {rows} and {cols}")


def ci_bars(
    summary: pl.DataFrame, x: str, metric: str, color: str | None = None, title: str | None = None
) -> go.Figure:
    """Bars of group means with 95% CI error bars; one trace per ``color`` value."""
    fig = go.Figure()
    groups = [None] if color is None else sorted(set(_labels(summary[color].to_list())))
    for g in groups:
        part = (
            summary
            if g is None
            else summary.filter(pl.col(color).cast(pl.Utf8).fill_null("unknown") == g)
        )
        mean = part["mean"].to_numpy()
        # no interval (a single sample): no error bar, not one reaching down to 0
        lo = part["ci_low"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        hi = part["ci_high"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        lo = np.where(np.isnan(lo), mean, lo)
        hi = np.where(np.isnan(hi), mean, hi)
        fig.add_bar(
            x=_labels(part[x].to_list()),
            y=mean,
            name=g or metric,
            text=[f"n={n}" for n in part["n"].to_list()] if "n" in part.columns else None,
            textposition="inside",
            insidetextanchor="start",
            customdata=[_ci_text(r) for r in part.iter_rows(named=True)]
            if "n" in part.columns
            else None,
            hovertemplate="%{x}<br>%{customdata}<extra></extra>" if "n" in part.columns else None,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": np.clip(hi - mean, 0, None),
                "arrayminus": np.clip(mean - lo, 0, None),
            },
        )
    fig.update_layout(barmode="group", showlegend=color is not None)
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(title=metric)
    return style(fig, title or f"Mean {metric} per {x} (95% CI where n >= 5)")


def distribution(values: pl.DataFrame, x: str, metric: str, title: str | None = None):
    """Per-sample values as box plots with every sample shown, one box per ``x``."""
    fig = go.Figure()
    for g in sorted(set(_labels(values[x].to_list()))):
        part = values.filter(pl.col(x).cast(pl.Utf8).fill_null("unknown") == g)
        fig.add_box(
            y=part["value"].to_list(),
            name=g,
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            text=part["sample_id"].to_list(),
            customdata=(  # (run, sample) of each point: a click opens it in the app
                list(zip(part["run_id"].to_list(), part["sample_id"].to_list(), strict=True))
                if "run_id" in part.columns
                else None
            ),
            hovertemplate="%{text}: %{y:.3f}<extra></extra>",
        )
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title=metric)
    return style(fig, title or f"{metric} per sample")


def matrix_heatmap(
    long: pl.DataFrame,
    value: str = "mean",
    title: str = "",
    colorbar: str = "",
    rows: str = "train_datasets",
    cols: str = "test_dataset",
    zmid: float | None = None,
) -> go.Figure:
    """A train x test matrix from long rows (``rows``, ``cols``, ``value``)."""
    rv = sorted(set(long[rows].to_list())) if long.height else []
    cv = sorted(set(long[cols].to_list())) if long.height else []
    z = np.full((len(rv), len(cv)), np.nan)
    for r in long.iter_rows(named=True):
        if r[value] is not None:
            z[rv.index(r[rows]), cv.index(r[cols])] = r[value]
    ns = np.full(z.shape, -1)
    if "n" in long.columns:
        for r in long.iter_rows(named=True):
            if r["n"] is not None:
                ns[rv.index(r[rows]), cv.index(r[cols])] = r["n"]
    text = [
        [
            ("" if np.isnan(v) else f"{v:.3f}" + (f"<br>n={n}" if n >= 0 else ""))
            for v, n in zip(zr, nr, strict=True)
        ]
        for zr, nr in zip(z, ns, strict=True)
    ]
    kw = {"zmid": zmid, "colorscale": "RdBu"} if zmid is not None else {"colorscale": SCALE}
    fig = go.Figure(
        go.Heatmap(
            z=z, x=cv, y=rv, text=text, texttemplate="%{text}", colorbar={"title": colorbar}, **kw
        )
    )
    fig.update_xaxes(title="test set", type="category")
    fig.update_yaxes(title="training set", type="category", autorange="reversed")
    return style(fig, title)


def ranking_bars(rank: pl.DataFrame, metric: str = "pq") -> go.Figure:
    """Training sets ranked on the unified test set (:func:`cellbench.analysis.ranking`), one
    colour per model family, 95% CIs and n; unranked (incomplete) training sets are left out."""
    r = rank.filter(pl.col("rank").is_not_null()).sort(["family", "rank"])
    weighting = r["weighting"][0] if r.height else "per-dataset"
    tests = r["test_datasets"][0].replace("+", ", ") if r.height else ""
    ts = r["test_set"][0] if r.height and "test_set" in r.columns else None
    where = f"test set {ts}" if ts else "the unified test set"
    return ci_bars(
        r,
        "train_datasets",
        metric,
        color="family" if r["family"].n_unique() > 1 else None,
        title=f"Ranking: mean {metric} on {where} ({tests}; {weighting} weighting)",
    )


def fusion_curve(fus: pl.DataFrame, metric: str = "pq") -> go.Figure:
    """Top-k fusion (:func:`cellbench.analysis.fusion`): observed and expected against k.

    Expected at k = for each test subset the best of the top-k single-dataset models,
    averaged over the subsets; a missing fused model is a gap in the observed line.
    """
    fig = go.Figure()
    fams = fus["family"].unique(maintain_order=True).to_list()
    for fam in fams:
        f = fus.filter(pl.col("family") == fam).sort("k")
        sfx = f" ({fam})" if len(fams) > 1 else ""
        obs = f["observed"].to_list()
        up = [
            None if o is None or h is None else h - o
            for o, h in zip(obs, f["ci_high"], strict=True)
        ]
        dn = [
            None if o is None or lo is None else o - lo
            for o, lo in zip(obs, f["ci_low"], strict=True)
        ]
        fig.add_scatter(
            x=f["k"].to_list(),
            y=obs,
            mode="lines+markers",
            name="observed" + sfx,
            text=f["train"].to_list(),
            error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": dn},
        )
        fig.add_scatter(
            x=f["k"].to_list(),
            y=f["expected"].to_list(),
            mode="lines+markers",
            name="expected: best of the top-k per test subset" + sfx,
            text=f["train"].to_list(),
            line={"dash": "dash"},
        )
    fig.update_xaxes(title="k: top-k datasets of the ranking fused", dtick=1)
    fig.update_yaxes(title=f"mean {metric}, unified test set")
    return style(fig, "Top-k fusion: observed vs expected")


def confusion_heatmap(analysis: dict, normalise: str = "true") -> go.Figure:
    """The confusion matrix of matched objects (:func:`cellbench.analysis.detail.run_analysis`):
    rows true class, columns predicted class, ``(none)`` for unpaired objects; cells show the
    normalised value and the count."""
    from cellbench.analysis.detail import confusion_frame

    counts = confusion_frame(analysis, "none")
    norm = confusion_frame(analysis, normalise)
    names = counts["true"].to_list()
    z = norm.drop("true").to_numpy().astype(float)
    n = counts.drop("true").to_numpy()
    text = [
        [
            ("" if np.isnan(v) else (f"{v:.2f}<br>" if normalise != "none" else "")) + f"{c:.0f}"
            for v, c in zip(zr, nr, strict=True)
        ]
        for zr, nr in zip(z, n, strict=True)
    ]
    what = {"true": "share of the true class (row)", "pred": "share of the prediction (column)"}
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar={"title": what.get(normalise, "count")},
            hoverinfo="skip",  # the cells' markers below answer hover and clicks
        )
    )
    # one invisible marker per cell, so that a click on a cell selects it (plotly heatmaps
    # report no click while selecting)
    xs, ys = np.meshgrid(names, names)
    fig.add_trace(
        go.Scatter(
            x=xs.ravel(),
            y=ys.ravel(),
            mode="markers",
            marker={"size": 28, "opacity": 0.01, "color": "#000000", "symbol": "square"},
            customdata=np.stack([ys.ravel(), xs.ravel(), [f"{v:.0f}" for v in n.ravel()]], 1),
            hovertemplate="true %{customdata[0]}, predicted %{customdata[1]}: "
            "%{customdata[2]} objects<extra></extra>",
            showlegend=False,
            name="cells",
        )
    )
    fig.update_xaxes(title="predicted class", type="category")
    fig.update_yaxes(title="true class", type="category", autorange="reversed")
    return style(fig, f"Confusion of matched objects ({analysis['pairing']})")


def threshold_curves(analysis: dict, classes: Sequence[str] | None = None) -> go.Figure:
    """Precision, recall and F1 against the score threshold per class, the operating point
    (every prediction kept: the run's own figure) and the best-F1 threshold marked."""
    from cellbench.analysis.detail import best_thresholds, curve_frame

    cf = curve_frame(analysis)
    best = {r["class"]: r for r in best_thresholds(analysis).iter_rows(named=True)}
    fig = go.Figure()
    names = classes or list(analysis.get("curves", {}))
    for k, cls in enumerate(names):
        c = cf.filter(pl.col("class") == cls).sort("threshold")
        if c.is_empty():
            continue
        colour = PALETTE[k % len(PALETTE)]
        for metric, dash in (("f1", "solid"), ("precision", "dot"), ("recall", "dash")):
            fig.add_scatter(
                x=c["threshold"].to_list(),
                y=c[metric].to_list(),
                mode="lines",
                name=f"{cls} {metric}",
                line={"color": colour, "dash": dash},
            )
        b = best[cls]
        op = c.row(0, named=True)  # lowest threshold: every prediction kept
        fig.add_scatter(
            x=[op["threshold"]],
            y=[op["f1"]],
            mode="markers",
            marker={"symbol": "circle-open", "size": 11, "color": colour},
            name=f"{cls} operating point (F1 {op['f1']:.3f})",
        )
        fig.add_scatter(
            x=[b["best_threshold"]],
            y=[b["best_f1"]],
            mode="markers",
            marker={"symbol": "star", "size": 11, "color": colour},
            name=f"{cls} best F1 {b['best_f1']:.3f} at {b['best_threshold']:.2f}",
        )
    fig.update_xaxes(title="score threshold (predictions kept: score >= threshold)")
    fig.update_yaxes(title="precision / recall / F1 (pooled counts)", range=[0, 1.02])
    return style(fig, "Detection against the score threshold")


def loss_curves(agg: pl.DataFrame, terms: Sequence[str] = ("loss",)) -> go.Figure:
    """Training and validation loss per epoch (:func:`cellbench.analysis.training.aggregate_logs`):
    the mean over seed repeats with its 95% t-band where n >= 2."""
    fig = go.Figure()
    for k, term in enumerate(terms):
        colour = PALETTE[k % len(PALETTE)]
        for split, dash in (("train", "solid"), ("val", "dash")):
            d = agg.filter((pl.col("term") == term) & (pl.col("split") == split)).sort("epoch")
            if d.is_empty():
                continue
            x = d["epoch"].to_list()
            if d["ci_low"].drop_nulls().len():
                fig.add_scatter(
                    x=x + x[::-1],
                    y=d["ci_high"].to_list() + d["ci_low"].to_list()[::-1],
                    fill="toself",
                    line={"width": 0},
                    fillcolor=colour,
                    opacity=0.15,
                    showlegend=False,
                    hoverinfo="skip",
                )
            n = d["n"].max()
            fig.add_scatter(
                x=x,
                y=d["mean"].to_list(),
                mode="lines",
                line={"color": colour, "dash": dash},
                name=f"{split} {term}" + (f" (mean of {n} runs)" if n > 1 else ""),
            )
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss")
    return style(fig, "Training curves")


def image_figure(image: np.ndarray, title: str | None = None, height: int | None = None):
    """An RGB image as a zoomable figure (pixel coordinates on hover).

    The pixels travel as one PNG (a data URI), not as a list of numbers: a 1000² tile is
    ~1 MB instead of ~12 MB of JSON, which decides how fast the page shows it.
    """
    import base64
    import io

    from PIL import Image

    arr = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    fig = go.Figure(go.Image(source=uri))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig = style(fig, title, height)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0})
    return fig


#: Print layout: body font (CSS px; 9 px = 6.75 pt, the smallest size journals accept is 6 pt),
#: the smallest plot area a figure may keep, and the longest label line before it wraps.
PRINT_FONT_PX = 9
MIN_PLOT_PX = 90
LABEL_WRAP = 18
LABEL_MAX = 48


class FigureTooSmall(ValueError):
    """A figure that cannot be laid out readably at the asked size."""


def _mm(px: float) -> float:
    return px * 25.4 / 96


def _wrap(label: str, width: int = LABEL_WRAP) -> str:
    """A label broken into lines of at most ``width`` characters (at spaces, ``/``, ``_``,
    ``→``), shortened with an ellipsis beyond :data:`LABEL_MAX` characters."""
    import re

    text = label if len(label) <= LABEL_MAX else label[: LABEL_MAX - 1] + "…"
    lines, cur = [], ""
    for tok in re.findall(r"[^\s/_→]+[\s/_→]*|[\s/_→]+", text):
        if cur and len(cur) + len(tok.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = ""
        cur += tok
    if cur.strip():
        lines.append(cur.rstrip())
    return "<br>".join(lines)


def wrap_title(title: str, width: int) -> str:
    """``title`` broken into lines of at most ``width`` characters at spaces (never cut: a
    title says what the figure is); existing ``<br>`` kept."""
    out = []
    for part in title.split("<br>"):
        cur = ""
        for word in part.split(" "):
            if cur and len(cur) + 1 + len(word) > width:
                out.append(cur)
                cur = word
            else:
                cur = f"{cur} {word}" if cur else word
        out.append(cur)
    return "<br>".join(out)


def _categories(fig: go.Figure, axis: str) -> list[str]:
    """The category labels shown on the x or y axis (from the traces' data)."""
    seen: dict[str, None] = {}
    for t in fig.data:
        vals = getattr(t, axis, None)
        if vals is None or t.type == "image":
            continue
        for v in vals:
            if isinstance(v, str):
                seen.setdefault(v, None)
    return list(seen)


def print_layout(fig: go.Figure, width_mm: float, height_mm: float) -> tuple[go.Figure, float]:
    """A copy of ``fig`` laid out for print at ``width_mm``, and the height (mm) to use.

    Fonts are set to :data:`PRINT_FONT_PX`; long category labels are wrapped (y) or slanted
    and shortened (x); the legend goes above the plot; a heatmap grows in height with its rows
    and every plot keeps at least :data:`MIN_PLOT_PX` of height. Raises
    :class:`FigureTooSmall` (with the width needed) when the x categories cannot fit.
    """
    f = go.Figure(fig)
    px = PRINT_FONT_PX
    char, line = 0.55 * px, 1.3 * px  # average glyph width and line height, CSS px
    w = width_mm / 25.4 * 96
    h = height_mm / 25.4 * 96
    ycats, xcats = _categories(f, "y"), _categories(f, "x")
    if _transpose_heatmap(f, xcats, ycats, w, char):
        ycats, xcats = xcats, ycats
    ymap = {c: _wrap(c) for c in ycats}
    left = max((max(map(len, v.split("<br>"))) for v in ymap.values()), default=5) * char + 40
    heatmap = any(t.type == "heatmap" for t in f.data)
    plot_w = w - left - (60 if heatmap else 15)
    slot = plot_w / max(len(xcats), 1)
    slant = any(len(c) * char > slot for c in xcats)
    if slant and slot < 1.5 * line and _bars_to_horizontal(f):
        return print_layout(f, width_mm, height_mm)  # categories now run down the page
    if slant and slot < 1.5 * line:
        need = _mm(w - plot_w + len(xcats) * 1.5 * line)
        raise FigureTooSmall(
            f"{len(xcats)} categories on the x axis do not fit at {width_mm:g} mm (about "
            f"{need:.0f} mm needed): choose a wider size or fewer groups"
        )
    xmap = {c: (c if len(c) <= 32 else c[:31] + "…") if slant else _wrap(c, 14) for c in xcats}
    for t in f.data:
        if t.type == "image":
            continue
        if ycats and t.y is not None and all(isinstance(v, str) for v in t.y):
            t.y = [ymap.get(v, v) for v in t.y]
        if xcats and t.x is not None and all(isinstance(v, str) for v in t.x):
            t.x = [xmap.get(v, v) for v in t.x]
        if t.type == "heatmap":
            t.colorbar = {"thickness": 8, "len": 1}
            t.textfont = {"size": px - 1}
    x_h = (max(map(len, xmap.values()), default=4) * char * 0.75) if slant else 2 * line
    names = [t.name for t in f.data if t.name] if f.layout.showlegend is not False else []
    legend_rows = 0
    if len(names) > 1:
        legend_rows = -(-int(sum(len(n) * char + 40 for n in names)) // int(w - 40))
    # the title wrapped to the figure's width (it was clipped at 89 mm), the top grown to it
    title = f.layout.title.text or ""
    t_char = char * (px + 1) / px
    title = wrap_title(title, max(10, int((w - 20) / t_char)))
    t_lines = title.count("<br>") + 1 if title else 1
    top = 2.5 * line + (t_lines - 1) * 1.3 * (px + 1) + legend_rows * 1.4 * line
    extra = top + 2 * line + x_h
    if heatmap and ycats:
        # a row holds its label's lines and its cells' text lines (mean, n): both must fit
        cell_lines = max(
            (
                str(v).count("<br>") + 1
                for t in f.data
                if t.type == "heatmap" and t.text is not None
                for r in t.text
                for v in r
            ),
            default=1,
        )
        label_lines = max(v.count("<br>") + 1 for v in ymap.values())
        per_row = max(label_lines, cell_lines) * 1.15 * line
        h = max(h, extra + len(ycats) * per_row)
    horizontal = [t for t in f.data if t.type == "bar" and t.orientation == "h"]
    if horizontal and ycats:
        per_row = max(v.count("<br>") + 1 for v in ymap.values()) * line
        h = max(h, extra + len(ycats) * max(per_row, 0.7 * line * len(horizontal)))
    h = max(h, extra + max(MIN_PLOT_PX, 0.35 * plot_w))
    f.update_layout(
        font={"size": px},
        height=None,
        width=None,
        title={
            "text": title or None,
            "font": {"size": px + 1},
            "y": 1 - 0.4 * line / h,
            "yref": "container",
            "yanchor": "top",
        },
        margin={"l": 30, "r": 10, "t": top, "b": 20},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "x": 0,
            "font": {"size": px - 1},
            "itemwidth": 30,
        },
        uniformtext={"minsize": 6, "mode": "show"},
    )
    if slant:
        f.update_xaxes(tickangle=-40)
    f.update_xaxes(automargin=True, title={"standoff": 2})
    f.update_yaxes(automargin=True, title={"standoff": 2})
    return f, _mm(h)


def _bars_to_horizontal(f: go.Figure) -> bool:
    """Turn a figure of vertical bars into horizontal ones (categories on the y axis), in
    place; False (untouched) when it has anything but vertical bars."""
    if not f.data or any(t.type != "bar" or t.orientation == "h" for t in f.data):
        return False
    for t in f.data:
        err = t.error_y.to_plotly_json() if t.error_y else None
        t.update(x=t.y, y=t.x, orientation="h", error_y=None, error_x=err)
    xt, yt = f.layout.xaxis.title.text, f.layout.yaxis.title.text
    f.update_xaxes(title=yt, type="linear")
    f.update_yaxes(title=xt, type="category", autorange="reversed")
    return True


def _transpose_heatmap(f: go.Figure, xcats, ycats, w: float, char: float) -> bool:
    """Swap a single heatmap's axes when its columns are too narrow for the cell text (mean
    and n) at width ``w`` px and it has fewer rows than columns: tall figures print well."""
    if len(f.data) != 1 or f.data[0].type != "heatmap" or len(xcats) <= len(ycats):
        return False
    if w * 0.6 / max(len(xcats), 1) >= 6 * char:
        return False
    t = f.data[0]

    def flip(a):
        return None if a is None else [list(r) for r in zip(*a, strict=True)]

    t.update(
        x=list(t.y), y=list(t.x), z=flip(t.z), text=flip(t.text), customdata=flip(t.customdata)
    )
    xt, yt = f.layout.xaxis.title.text, f.layout.yaxis.title.text
    f.update_xaxes(title=yt, autorange=None)
    f.update_yaxes(title=xt, autorange="reversed")
    return True


def plot_area(svg: str | bytes) -> tuple[float, float]:
    """Width and height (CSS px) of the first plot area in a Plotly SVG."""
    import re

    text = svg.decode() if isinstance(svg, bytes) else svg
    m = re.search(r'class="plotclip"><rect[^>]*?width="([\d.]+)"[^>]*?height="([\d.]+)"', text)
    if m is None:
        return (0.0, 0.0)
    return float(m.group(1)), float(m.group(2))


def export_figure(
    fig: go.Figure, fmt: str = "svg", width_mm: float = 89, height_mm: float = 70, dpi: int = 300
) -> bytes:
    """The figure as SVG, PDF or PNG bytes at ``width_mm`` wide, laid out for print
    (:func:`print_layout`: fonts, wrapped labels, margins; the height grows where the content
    needs it, else ``height_mm``).

    Sizes are set in CSS pixels (96 per inch) so text keeps its point size; PNG is rendered
    at ``dpi``. Needs kaleido and a Chromium (Debian's ``chromium`` works). Raises
    :class:`FigureTooSmall` where the figure cannot be readable at that width.
    """
    if fmt not in ("svg", "pdf", "png"):
        raise ValueError(f"unsupported format '{fmt}' (svg, pdf, png)")
    import warnings

    _kaleido_server()
    w = round(width_mm / 25.4 * 96)

    def render(f, fmt_, h_mm):
        h = round(h_mm / 25.4 * 96)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            return f.to_image(
                format=fmt_, width=w, height=h, scale=dpi / 96 if fmt_ == "png" else 1
            )

    if any(t.type == "image" for t in fig.data):
        return render(fig, fmt, height_mm)
    fig, height_mm = print_layout(fig, width_mm, height_mm)
    pw, ph = plot_area(render(fig, "svg", height_mm))
    if pw < MIN_PLOT_PX:
        raise FigureTooSmall(
            f"the labels leave a {pw:.0f} px wide plot at {width_mm:g} mm (at least "
            f"{MIN_PLOT_PX} px needed): choose a wider size"
        )
    if ph < MIN_PLOT_PX:  # the margins took more than estimated: grow, never shrink the plot
        height_mm += _mm(MIN_PLOT_PX - ph + 4)
    return render(fig, fmt, height_mm)


def fitting_width(fig: go.Figure, width_mm: float, height_mm: float = 70) -> float:
    """``width_mm`` where the figure is readable there, else the narrowest wider journal width
    (:data:`PUBLICATION_SIZES`) where it is; :class:`FigureTooSmall` when none is wide
    enough."""
    widths = [width_mm] + sorted(w for w, _ in PUBLICATION_SIZES.values() if w > width_mm)
    err = None
    for w in widths:
        try:
            if not any(t.type == "image" for t in fig.data):
                print_layout(fig, w, height_mm)
            return w
        except FigureTooSmall as e:
            err = e
    raise err


_SERVER: list[bool] = []


def _kaleido_server() -> None:
    """Keep one Chromium for all exports of the process (2 s to start, then ~0.2 s a figure)."""
    if _SERVER:
        return
    import atexit

    import kaleido

    try:
        kaleido.start_sync_server(silence_warnings=True)
        atexit.register(kaleido.stop_sync_server, silence_warnings=True)
    except Exception:  # noqa: BLE001 - fall back to one browser per export
        pass
    _SERVER.append(True)


def frame_bytes(df: pl.DataFrame, fmt: str = "csv") -> bytes:
    """The data behind a figure as CSV or parquet bytes (CSV: list cells joined with ``;``)."""
    import io

    buf = io.BytesIO()
    if fmt == "parquet":
        df.write_parquet(buf)
    else:
        lists = [c for c, d in df.schema.items() if isinstance(d, pl.List)]
        df.with_columns(pl.col(c).cast(pl.List(pl.Utf8)).list.join(";") for c in lists).write_csv(
            buf
        )
    return buf.getvalue()


def labels(values: Sequence) -> list[str]:
    """Category labels as figures show them (null = "unknown")."""
    return _labels(values)


def standard_figures(
    store, table: pl.DataFrame | None = None, metric: str = "pq", preset: str = "hovernet"
) -> dict[str, tuple[go.Figure, pl.DataFrame]]:
    """The workbench's standard figures from the store (and sample table), by file name.

    Catalog distributions (when a sample table is given); per run: mean ``metric`` per center
    and per organ; the train x test matrix, C_ij (diagonal normalisation), ranking and fusion
    when runs of models with training sets exist. Each entry is ``(figure, data)``.
    """
    from cellbench.analysis import (
        CROSS_FORMS,
        cross_correlation,
        fusion,
        group_summary,
        latest_runs,
        ranking,
        train_test_matrix,
    )

    out: dict[str, tuple[go.Figure, pl.DataFrame]] = {}
    if table is not None and table.height:
        for col in ("dataset", "center", "organ", "stain", "category"):
            out[f"samples_per_{col}"] = (count_bar(table, col), table)
        out["nuclei_per_sample"] = (histogram(table, "n_objects", "Nuclei per sample"), table)
    runs = latest_runs(store, preset)
    if runs:
        labels = {
            r["run_id"]: f"{r['model_id']} → {r['test_dataset']}"
            for r in store.runs().iter_rows(named=True)
        }
        for key in ("center", "organ"):
            s = group_summary(store, runs, metric, ["run_id", key])
            if s.height:
                s = s.with_columns(run=pl.col("run_id").replace_strict(labels, default=None))
                out[f"{metric}_per_{key}"] = (summary_heatmap(s, "run", key, metric), s)
        long = train_test_matrix(store, metric, preset)
        fams = long["family"].unique(maintain_order=True).to_list() if long.height else []
        for fam in fams:
            sfx = f"_{fam}" if len(fams) > 1 else ""
            cells = long.filter(pl.col("family") == fam)
            out[f"train_test_{metric}{sfx}"] = (
                matrix_heatmap(
                    cells,
                    "mean",
                    f"Mean {metric} ({fam}): trained on (rows), tested on (columns)",
                    metric,
                ),
                cells,
            )
            cij = cross_correlation(cells, "diagonal")
            if cij.height:
                out[f"cij_diagonal{sfx}"] = (
                    matrix_heatmap(cij, "value", CROSS_FORMS["diagonal"], "C_ij", zmid=1.0),
                    cij,
                )
        if fams:
            rank = ranking(store, None, metric, preset)
            if rank.filter(pl.col("rank").is_not_null()).height:
                out["ranking"] = (ranking_bars(rank, metric), rank)
            fus = fusion(store, None, metric, preset)
            if fus.filter(pl.col("k") > 1).height:
                out["fusion"] = (fusion_curve(fus, metric), fus)
    return out


def preset_bars(table: pl.DataFrame, title: str = "The same predictions under each preset"):
    """Grouped bars: one group per metric, one bar per preset (``preset``, ``metric``,
    ``value`` columns)."""
    fig = go.Figure()
    for p in table["preset"].unique(maintain_order=True).to_list():
        part = table.filter(pl.col("preset") == p)
        fig.add_bar(x=part["metric"].to_list(), y=part["value"].to_list(), name=p)
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="value")
    return style(fig, title)


def save_figure(
    fig: go.Figure, folder, name: str, width_mm: float = 120, height_mm: float = 85
) -> list:
    """Write ``name.svg`` and ``name.pdf`` into ``folder`` (atomically); return the paths."""
    from pathlib import Path

    from cellbench.core.atomic import write_bytes_atomic

    folder = Path(folder)
    return [
        write_bytes_atomic(
            folder / f"{name}.{fmt}",
            export_figure(fig, fmt, fitting_width(fig, width_mm, height_mm), height_mm),
        )
        for fmt in ("svg", "pdf")
    ]
