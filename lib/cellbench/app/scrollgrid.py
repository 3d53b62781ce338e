"""One scrolling grid of uniform thumbnails: every sample of a selection in one scroll, drawn
only as it scrolls into view.

The page passes the rows (sample id, caption, state) to a Streamlit v2 component
(``resources/scrollgrid.js`` and ``.css``; no iframe) that lays square tiles in a CSS grid
inside a scrolling box and appends them in chunks of 120 as the user scrolls. Each tile's
image is an ``<img loading="lazy">`` from the tile server (:mod:`cellbench.app.tiles`), which
draws it on its first request (the ground truth, or the run's TP / FP / FN once its
predictions are at hand: :func:`cellbench.app.ui.thumb_set`), so a grid of thousands of
samples costs the browser and the server only what is scrolled to. A click (or Enter) on a
tile returns its sample id. Captions are set as text, never as markup.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_RESOURCES = Path(__file__).resolve().parent.parent / "resources"
#: Most tiles in one grid (the rows' captions travel to the browser at once).
MAX_ITEMS = 20_000
#: Tile sizes offered, in CSS pixels.
SIZES = (120, 160, 220, 300)

_COMPONENT = None


def _component():
    global _COMPONENT
    if _COMPONENT is None:
        _COMPONENT = st.components.v2.component(
            "cellbench_scrollgrid",
            html='<div class="cbg-root"></div>',
            css=(_RESOURCES / "scrollgrid.css").read_text(),
            js=(_RESOURCES / "scrollgrid.js").read_text(),
            isolate_styles=False,
        )
    return _COMPONENT


def show(
    key: str,
    base: str,
    items: list[tuple[int, str, str, str]],
    tile: int = 160,
    height: int = 720,
) -> str | None:
    """Mount the grid; the sample id of a tile clicked in this rerun, else None.

    Parameters
    ----------
    key
        Widget key (one per grid on a page).
    base
        URL prefix of the thumbnails: thumbnail ``k`` in state ``s`` is ``<base><k>_<s>.jpg``.
    items
        ``(k, sample id, caption, state)`` per tile in display order (the caption is shown
        under the sample id, e.g. the sort value); ``state`` ``e`` (the run's errors) or ``t``
        (the ground truth). At most :data:`MAX_ITEMS` are shown.
    tile, height
        Smallest tile side and the scrolling box's largest height, in CSS pixels (a grid
        of a few rows takes only their height).
    """
    data = {"base": base, "items": items[:MAX_ITEMS], "tile": int(tile), "height": int(height)}
    res = _component()(key=key, data=data, on_open_change=lambda: None)
    return getattr(res, "open", None) if res is not None else None
