"""The per-dataset record cache: reused while nothing changed, recomputed when anything did."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from test_layouts import _entry, _png, _write_catalog

from cellbench.core.errors import DataError
from cellbench.data import record_cache
from cellbench.data.readers import READERS
from cellbench.data.samples import load_sample, records, sample_table


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A two-image binary-mask dataset whose reader counts its ``records()`` calls."""
    root = tmp_path / "data" / "masks"
    for i, n in enumerate((2, 3)):
        m = np.zeros((20, 30), np.uint8)
        for k in range(n):
            m[2 + 6 * k : 5 + 6 * k, 2:6] = 255
        _png(root / "images" / f"s{i}.png", np.full((20, 30, 3), 180, np.uint8))
        _png(root / "masks" / f"s{i}.png", m)
    cat = _write_catalog(
        tmp_path,
        [
            _entry(
                "toy",
                {
                    "format": "binary_mask",
                    "location": "masks",
                    "options": {"splits": {"test": "images/*.png"}, "masks": "masks/{stem}.png"},
                },
            )
        ],
    )
    cls = READERS["binary_mask"]
    calls = []
    orig = cls.records

    def spy(self):
        calls.append(1)
        if (self.location / "BROKEN").exists():
            raise DataError(self.location / "BROKEN", "a reader error")
        recs = orig(self)
        for r in recs:  # this reader counts nuclei on load only: count here, as others do
            r.meta["n_objects"] = int(np.asarray(Image.open(r.files["mask"])).any(1).sum() // 3)
        return recs

    monkeypatch.setattr(cls, "records", spy)
    monkeypatch.setattr(record_cache, "_memory", {})
    return cat, root, calls


def _forget():
    record_cache._memory.clear()  # as a new process would start


def test_reused_across_processes_and_identical(counted):
    cat, root, calls = counted
    first = records(cat, "toy")
    assert len(calls) == 1
    _forget()
    again = records(cat, "toy")
    assert len(calls) == 1, "a second process must read the disk cache, not list again"
    assert again == first  # same ids, splits, metadata, files (as Paths) and extras
    assert sample_table(cat)["n_objects"].to_list() == [2, 3]
    assert load_sample(cat, "toy", "s1").n_objects == 3
    assert len(calls) == 1


def test_changed_file_added_file_or_changed_entry_recompute(counted, tmp_path):
    cat, root, calls = counted
    records(cat, "toy")
    m = np.zeros((20, 30), np.uint8)
    m[1:4, 1:4] = 255
    _png(root / "masks" / "s0.png", m)  # one nucleus now
    os.utime(root / "masks" / "s0.png", ns=(1, 1))
    _forget()
    assert [r.meta["n_objects"] for r in records(cat, "toy")] == [1, 3]  # 3 rows: 1 nucleus
    assert len(calls) == 2
    _png(root / "images" / "s2.png", np.full((20, 30, 3), 180, np.uint8))
    _png(root / "masks" / "s2.png", m)
    _forget()
    assert len(records(cat, "toy")) == 3
    # a changed catalog entry (another split name) is another listing
    cat2 = _write_catalog(
        tmp_path,
        [
            _entry(
                "toy",
                {
                    "format": "binary_mask",
                    "location": "masks",
                    "options": {"splits": {"train": "images/*.png"}, "masks": "masks/{stem}.png"},
                },
            )
        ],
    )
    assert {r.split for r in records(cat2, "toy")} == {"train"}
    assert len(calls) == 4
    # only the newest cache file of the dataset is kept
    assert len(list(record_cache.cache_dir().glob("toy-*.json"))) == 1


def test_damaged_or_unwritable_cache_is_not_an_error(counted, monkeypatch):
    cat, root, calls = counted
    first = records(cat, "toy")
    (path,) = record_cache.cache_dir().glob("toy-*.json")
    path.write_text("{ not json")
    _forget()
    assert records(cat, "toy") == first
    assert len(calls) == 2
    assert record_cache._decode(path.read_bytes()) == first  # rewritten

    def refuse(*a, **k):
        raise PermissionError("read-only home")

    monkeypatch.setattr(record_cache, "write_bytes_atomic", refuse)
    path.unlink()
    _forget()
    assert records(cat, "toy") == first
    assert len(calls) == 3


def test_reader_errors_are_not_cached(counted):
    cat, root, calls = counted
    (root / "BROKEN").write_text("")
    with pytest.raises(DataError, match="a reader error"):
        records(cat, "toy")
    assert not list(record_cache.cache_dir().glob("toy-*.json"))
