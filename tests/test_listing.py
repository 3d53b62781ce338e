"""The first listing of the local data runs in the background; Home never waits on it."""

from __future__ import annotations

import time

import pytest
from test_app_pages import _no_errors, _page, _text


def _wait_listed(cat, timeout: float = 180.0) -> dict:
    from cellbench.data import listing

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = listing.status(cat)
        if not st["running"]:
            return st
        time.sleep(0.2)
    raise AssertionError("the listing did not finish")


def test_home_answers_before_the_first_listing_and_fills_in_after_it(data_env, monkeypatch):
    from cellbench.core import config
    from cellbench.data import record_cache
    from cellbench.data.catalog import load_catalog
    from cellbench.data.record_cache import peek

    monkeypatch.setattr(record_cache, "_memory", {})  # this process's earlier listings
    monkeypatch.setenv("CELLBENCH_PREFETCH", "1")  # the listing runs in its own process
    cat = load_catalog(config.catalog_path(), config.data_root())
    assert all(peek(cat, d.id) is None for d in cat if cat.is_available(d))
    at = _page("0_Home.py").run()
    _no_errors(at)
    assert [m.value for m in at.metric][2] == "…"
    datasets = next(m.value for m in at.markdown if m.value.startswith("| "))
    assert "| listing " in datasets
    assert "will appear once the local data is listed" in _text(at)
    done = _wait_listed(cat)
    assert done["pending"] == [] and done["failed"] == {}
    at.run()
    _no_errors(at)
    n = sum(len(peek(cat, d.id)) for d in cat if cat.is_available(d))
    assert [m.value for m in at.metric][2] == str(n) and n > 900
    assert "| listing " not in next(m.value for m in at.markdown if m.value.startswith("| "))


def test_a_failed_dataset_is_reported_and_retried_only_when_asked(data_env, monkeypatch):
    import subprocess

    from cellbench.core import config
    from cellbench.data import listing, record_cache, samples
    from cellbench.data.catalog import load_catalog

    monkeypatch.setattr(record_cache, "_memory", {})  # this process's earlier listings
    cat = load_catalog(config.catalog_path(), config.data_root())
    real = samples.records

    def records(c, ds, split=None):
        if ds == "dsb2018":
            raise ValueError("an unreadable annotation file")
        return real(c, ds, split)

    monkeypatch.setattr(samples, "records", records)
    listing.list_all(cat)
    st = listing.status(cat)
    assert st["pending"] == [] and not st["running"]
    assert st["failed"] == {"dsb2018": "ValueError: an unreadable annotation file"}

    spawned = []

    class Fake:
        pid = 2**22 + 12345  # no such process

        def __init__(self, args, **kw):
            spawned.append(args)

    monkeypatch.setattr(subprocess, "Popen", Fake)
    assert not listing.start(cat)["running"] and spawned == []  # not again by itself
    got = listing.start(cat, retry=True)
    assert got["running"] and got["pending"] == ["dsb2018"] and len(spawned) == 1
    # that process is gone before finishing: its datasets are failed, never respawned
    st = listing.status(cat)
    assert not st["running"] and "stopped before listing it" in st["failed"]["dsb2018"]
    listing.start(cat)
    assert len(spawned) == 1


@pytest.mark.parametrize("page", ["1_Catalog.py", "2_Dataset_explorer.py", "3_Evaluate.py"])
def test_pages_that_need_the_listing_say_so_while_it_runs(data_env, monkeypatch, page):
    from cellbench.core import config
    from cellbench.data import listing, record_cache
    from cellbench.data.catalog import load_catalog

    monkeypatch.setattr(record_cache, "_memory", {})  # this process's earlier listings
    monkeypatch.setenv("CELLBENCH_PREFETCH", "1")
    cat = load_catalog(config.catalog_path(), config.data_root())
    try:
        at = _page(page).run()
        _no_errors(at)
        assert "will appear once the local data is listed" in _text(at)
        assert at.get("progress")
    finally:
        assert not _wait_listed(cat)["pending"]
        assert listing.status(cat)["failed"] == {}
