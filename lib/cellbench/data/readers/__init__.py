"""Readers: one module per annotation / image format, registered by layout name.

See :mod:`cellbench.data.readers.base` for the interface. ``get_reader(catalog, dataset_id)`` gives
the reader of a catalog entry with local data.
"""

from __future__ import annotations

from cellbench.core.errors import CatalogError
from cellbench.data.readers import (  # noqa: F401  (registration side effects)
    aperio_xml,
    coco,
    colour_masks,
    grand_challenge,
    hovernet,
    image_editor_xml,
    imagej_roi,
    isbi2014,
    label_tiff,
    masks,
    qupath_geojson,
)
from cellbench.data.readers.base import READERS, DatasetReader, SampleRecord


def get_reader(catalog, dataset_id: str) -> DatasetReader:
    """The reader for a catalog entry; raises :class:`CatalogError` if it has no local data."""
    d = catalog.get(dataset_id)
    if d.local is None:
        raise CatalogError(catalog.path, f"dataset '{d.id}' has no local data. {d.obtain}")
    if d.local.format not in READERS:
        raise CatalogError(
            catalog.path,
            f"dataset '{d.id}': field 'local.format': unknown reader '{d.local.format}' "
            f"(known: {', '.join(sorted(READERS))})",
        )
    loc = catalog.location(d)
    if not loc.exists():
        raise CatalogError(
            catalog.path, f"dataset '{d.id}': local data not found at {loc}. {d.obtain}"
        )
    return READERS[d.local.format](d, loc)


__all__ = ["READERS", "DatasetReader", "SampleRecord", "get_reader"]
