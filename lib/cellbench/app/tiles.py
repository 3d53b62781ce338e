"""The deep-zoom viewer's tile endpoint: slides and images as OpenSeadragon tiles, with objects.

Streamlit serves no custom routes, so the app starts one small HTTP server per process (a
daemon thread, :func:`server`) on the interface Streamlit listens on (``server.address``:
``127.0.0.1`` unless the app is served to a lab network on purpose) and a free port. It
serves only what a page registered, under a random per-process token:

``/<token>/viewer/<view>``        the viewer page (OpenSeadragon 5.0.1 from its npm package,
                                  ``resources/openseadragon``, and the overlay code of
                                  ``resources/viewer.html``), shown by the page in an iframe;
``/<token>/tile/<source>/<level>/<x>_<y>.jpg``
                                  a 256-pixel tile: OpenSeadragon's level ``L`` is the image
                                  scaled by ``2**(L - max_level)``; each tile is read from the
                                  finest pyramid level not finer than needed (tiffslide /
                                  OpenSlide, :func:`cellbench.data.wsi.open_slide`), or from a
                                  cached overview for the coarsest levels, and resized;
``/<token>/objects/<view>.json``  the view's objects (level-0 pixel polygons or points, class,
                                  colour, layer such as ground truth / prediction / TP / FP /
                                  FN, and measurements), drawn and hit-tested by the viewer;
``/<token>/openseadragon.min.js`` the library;
``/<token>/thumb/<set>/<k>_<state>.jpg``
                                  thumbnail ``k`` of a registered set of samples (the scrolling
                                  sample grid, :mod:`cellbench.app.scrollgrid`), drawn by the
                                  set's own function on the first request (``state`` ``e``: the
                                  run's errors, ``t``: the ground truth) and kept by the page's
                                  cache; one thumbnail is drawn at a time.

Slide paths reach this module only from pages that confined them (``ui.confined``); an id
that was not registered, or a wrong token, is answered 404 / 403 without reading anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

#: Tile side in pixels.
TILE = 256
#: Longest side of the overview kept per slide; coarser OpenSeadragon levels read from it.
OVERVIEW = 2048
_RESOURCES = Path(__file__).resolve().parent.parent / "resources"


@dataclass
class Source:
    """An image served as tiles: a slide file (``path``) or an RGB array (``image``)."""

    width: int
    height: int
    mpp: float | None = None
    path: Path | None = None
    image: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _overview: np.ndarray | None = field(default=None, repr=False)

    @property
    def max_level(self) -> int:
        """OpenSeadragon's finest level (full resolution)."""
        return max(0, math.ceil(math.log2(max(self.width, self.height, 1))))

    def region(self, x0: float, y0: float, w0: float, h0: float, out_w: int, out_h: int):
        """The level-0 box ``(x0, y0, w0, h0)`` as an ``(out_h, out_w, 3)`` RGB array."""
        from PIL import Image

        scale = w0 / out_w  # level-0 pixels per output pixel
        if self.image is not None:
            part = self.image[int(y0) : int(math.ceil(y0 + h0)), int(x0) : int(math.ceil(x0 + w0))]
        else:
            part = self._slide_region(x0, y0, w0, h0, scale)
        if part.shape[:2] == (out_h, out_w):
            return np.ascontiguousarray(part)
        im = Image.fromarray(np.ascontiguousarray(part))
        return np.asarray(im.resize((out_w, out_h), Image.BILINEAR))

    def _slide_region(self, x0, y0, w0, h0, scale) -> np.ndarray:
        s = _open(str(self.path))
        ds = s.level_downsamples
        with self._lock:  # one reader per slide handle at a time
            # coarser than the pyramid's coarsest level by 2x (a read would cover many of its
            # pixels) and than the overview: cut from the overview
            ov = self._overview_image(s) if scale > 2 * ds[-1] else None
            ov_scale = self.width / ov.shape[1] if ov is not None else math.inf
            if scale >= ov_scale:
                return ov[
                    int(y0 / ov_scale) : max(int(y0 / ov_scale) + 1, int((y0 + h0) / ov_scale)),
                    int(x0 / ov_scale) : max(int(x0 / ov_scale) + 1, int((x0 + w0) / ov_scale)),
                ]
            level = max((k for k, d in enumerate(ds) if d <= scale * 1.001), default=0)
            d = ds[level]
            return s.read_region(
                round(x0), round(y0), max(1, round(w0 / d)), max(1, round(h0 / d)), level
            )

    def _overview_image(self, s) -> np.ndarray:
        if self._overview is None:
            self._overview = s.thumbnail(min(OVERVIEW, max(self.width, self.height)))
        return self._overview

    def tile(self, level: int, tx: int, ty: int) -> np.ndarray | None:
        """OpenSeadragon tile ``(tx, ty)`` of ``level``, or None outside the image."""
        if not 0 <= level <= self.max_level or tx < 0 or ty < 0:
            return None
        s = 2.0 ** (level - self.max_level)
        lw, lh = math.ceil(self.width * s), math.ceil(self.height * s)
        x, y = tx * TILE, ty * TILE
        if x >= lw or y >= lh:
            return None
        tw, th = min(TILE, lw - x), min(TILE, lh - y)
        x0, y0 = x / s, y / s
        w0 = min(tw / s, self.width - x0)
        h0 = min(th / s, self.height - y0)
        return self.region(x0, y0, w0, h0, tw, th)


_SLIDES: dict[str, Any] = {}
_SLIDES_LOCK = threading.Lock()


def _open(path: str):
    from cellbench.data.wsi import open_slide

    with _SLIDES_LOCK:
        if path not in _SLIDES:
            if len(_SLIDES) >= 16:
                _SLIDES.pop(next(iter(_SLIDES))).close()
            _SLIDES[path] = open_slide(path)
        return _SLIDES[path]


@dataclass
class View:
    """What one viewer shows: a source, its objects, their layers and a title."""

    source: str
    objects: list[dict[str, Any]]
    layers: dict[str, str]  # layer -> CSS colour ("" = each object's class colour)
    title: str = ""
    hidden: list[str] = field(default_factory=list)  # layers that start hidden


@dataclass
class Thumbs:
    """A set of thumbnails: sample ids and the function that draws one (``(sample id,
    errors) -> RGB array or None`` where it cannot be drawn)."""

    ids: list[str]
    draw: Any


class Registry:
    """The sources, views and thumbnail sets this process serves (bounded: oldest dropped
    first)."""

    def __init__(self, limit: int = 64):
        self.sources: dict[str, Source] = {}
        self.views: dict[str, View] = {}
        self.thumbs: dict[str, Thumbs] = {}
        self.limit = limit
        self.lock = threading.Lock()

    def _put(self, table: dict, key: str, value) -> str:
        with self.lock:
            table.pop(key, None)
            table[key] = value
            while len(table) > self.limit:
                table.pop(next(iter(table)))
        return key

    def slide(self, path: str | Path) -> str:
        """Register a slide file (already confined by the page); its source id."""
        from cellbench.data.wsi import open_slide

        p = Path(path).resolve()
        st = p.stat()
        key = hashlib.sha256(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
        if key not in self.sources:
            with open_slide(p) as s:  # unreadable files fail here, named, not in a tile
                w, h = s.dimensions
                mpp = s.mpp
            self._put(self.sources, key, Source(w, h, mpp, path=p))
        return key

    def image(self, image: np.ndarray, mpp: float | None = None) -> str:
        """Register an in-memory RGB (or grey) image; its source id."""
        from cellbench.viz.overlay import to_rgb

        arr = to_rgb(image)
        key = hashlib.sha256(arr.tobytes()).hexdigest()[:24]
        if key not in self.sources:
            self._put(self.sources, key, Source(arr.shape[1], arr.shape[0], mpp, image=arr))
        return key

    def view(self, view: View) -> str:
        """Register what a viewer shows; its view id."""
        doc = json.dumps(
            [view.source, view.objects, view.layers, view.title, view.hidden], default=str
        )
        key = hashlib.sha256(doc.encode()).hexdigest()[:24]
        return self._put(self.views, key, view)

    def thumb_set(self, key: str, thumbs: Thumbs) -> str:
        """Register a thumbnail set under ``key`` (the caller's digest of what it shows)."""
        return self._put(self.thumbs, key, thumbs)


REGISTRY = Registry()
#: One thumbnail drawn at a time: the grid's requests never crowd out the app's own work.
_DRAW_LOCK = threading.Lock()


def _jpeg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=85)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    token = ""
    registry = REGISTRY

    def log_message(self, *args) -> None:  # the app's console stays quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) < 2 or not secrets.compare_digest(parts[0], self.token):
            return self._send(403, b"forbidden", "text/plain")
        try:
            return self._route(parts[1:])
        except Exception as e:  # noqa: BLE001 - a tile that fails is an error response
            msg = f"{type(e).__name__}: {e}".encode()
            return self._send(500, msg, "text/plain")

    def _route(self, p: list[str]) -> None:
        reg = self.registry
        if p == ["openseadragon.min.js"]:
            body = (_RESOURCES / "openseadragon" / "openseadragon.min.js").read_bytes()
            return self._send(200, body, "text/javascript", cache=True)
        if len(p) == 2 and p[0] == "viewer" and p[1] in reg.views:
            return self._send(200, viewer_html(p[1], reg), "text/html; charset=utf-8")
        if len(p) == 2 and p[0] == "objects" and p[1].removesuffix(".json") in reg.views:
            v = reg.views[p[1].removesuffix(".json")]
            body = json.dumps({"objects": v.objects, "layers": v.layers}).encode()
            return self._send(200, body, "application/json")
        if len(p) == 4 and p[0] == "tile" and p[1] in reg.sources and p[3].endswith(".jpg"):
            try:
                level = int(p[2])
                tx, ty = (int(v) for v in p[3].removesuffix(".jpg").split("_"))
            except ValueError:
                return self._send(404, b"no such tile", "text/plain")
            arr = reg.sources[p[1]].tile(level, tx, ty)
            if arr is None or arr.size == 0:
                return self._send(404, b"no such tile", "text/plain")
            return self._send(200, _jpeg(arr), "image/jpeg", cache=True)
        if len(p) == 3 and p[0] == "thumb" and p[1] in reg.thumbs and p[2].endswith(".jpg"):
            k, _, state = p[2].removesuffix(".jpg").partition("_")
            ts = reg.thumbs[p[1]]
            if not (k.isdigit() and int(k) < len(ts.ids) and state in ("e", "t")):
                return self._send(404, b"no such thumbnail", "text/plain")
            with _DRAW_LOCK:
                arr = ts.draw(ts.ids[int(k)], state == "e")
            if arr is None:
                return self._send(404, b"cannot be drawn", "text/plain")
            return self._send(200, _jpeg(arr), "image/jpeg", cache=True)
        return self._send(404, b"not found", "text/plain")


def viewer_html(view_id: str, registry: Registry) -> bytes:
    """The viewer page of a view (``resources/viewer.html`` with its settings filled in)."""
    view = registry.views[view_id]
    src = registry.sources[view.source]
    settings = {
        "width": src.width,
        "height": src.height,
        "maxLevel": src.max_level,
        "tileSize": TILE,
        "mpp": src.mpp,
        "tiles": f"tile/{view.source}",
        "objects": f"objects/{view_id}.json",
        "title": view.title,
        "hidden": view.hidden,
    }
    page = (_RESOURCES / "viewer.html").read_text()
    # the settings are JSON inside a script: "<" escaped so no string can close the tag
    return page.replace("__SETTINGS__", json.dumps(settings).replace("<", "\\u003c")).encode()


@dataclass
class Server:
    """The running tile server: its address, port and token."""

    host: str
    port: int
    token: str
    httpd: ThreadingHTTPServer

    def base(self, host: str | None = None) -> str:
        """The server's URL prefix (token included, ending in ``/``) as a browser reaches it
        (``host``: the name the browser used for the app, when the server listens on every
        interface)."""
        return f"http://{host or self.host}:{self.port}/{self.token}/"


_SERVER: Server | None = None
_SERVER_LOCK = threading.Lock()


def server(address: str | None = None) -> Server:
    """The process's tile server, started on first use on ``address`` (default loopback)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            host = address or "127.0.0.1"
            handler = type("Handler", (_Handler,), {"token": secrets.token_urlsafe(18)})
            httpd = ThreadingHTTPServer((host, 0), handler)
            httpd.daemon_threads = True
            threading.Thread(
                target=httpd.serve_forever, name="cellbench-tiles", daemon=True
            ).start()
            _SERVER = Server(host, httpd.server_address[1], handler.token, httpd)
        return _SERVER
