"""Scoring at whole-slide scale (issue 17, item 4, in part): no int32 overflow in assignment
keys, overlap cost independent of the id range, bootstrap in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cellbench.metrics import instance_scores
from cellbench.metrics.overlap import compute_overlap
from cellbench.metrics.points import hungarian_match


def _many_nuclei(n_side: int = 230):
    """``n_side``^2 2x2-px nuclei plus, after them, a chain component (one GT over two
    predictions, the second prediction over another GT) that needs a real assignment."""
    h = n_side * 3 + 10
    t = np.zeros((h, h), np.int32)
    rr, cc = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    ids = (rr * n_side + cc + 1).ravel()
    for dr in (0, 1):
        for dc in (0, 1):
            t[(rr * 3 + dr).ravel(), (cc * 3 + dc).ravel()] = ids
    k = int(ids[-1])
    p = t.copy()
    r0 = n_side * 3 + 2
    t[r0 : r0 + 2, 0:4], t[r0 : r0 + 2, 4:8] = k + 1, k + 2
    p[r0 : r0 + 2, 0:2], p[r0 : r0 + 2, 2:6] = k + 1, k + 2
    return t, p


def test_assignment_keys_do_not_overflow_int32():
    # 52,902 instances: component label x instance count exceeds 2^31 (IndexError before)
    t, p = _many_nuclei()
    r = instance_scores(t, p, "hovernet")
    assert r["n_true"] == 230 * 230 + 2
    # the chain: GT A-pred a (4 of 8 px) and GT B-pred b (4 of 12 px) are the assignment
    n = 230 * 230
    assert r["tp"] == n and r["aji_plus"] == pytest.approx((4 * n + 8) / (4 * n + 20))


def test_radius_hungarian_at_100k_points():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 12288, (100_000, 2))
    b = a + rng.normal(0, 2, a.shape)
    ia, ib = hungarian_match(a, b, 12.0)
    assert len(ia) > 99_900 and (np.sort(ia) == np.unique(ia)).all()


def test_overlap_cost_follows_pixels_not_the_id_range():
    rng = np.random.default_rng(0)
    t = np.zeros((256, 256), np.int32)
    for k in range(60):
        r, c = rng.integers(0, 240, 2)
        t[r : r + 12, c : c + 12] = k + 1
    p = np.roll(t, 2, axis=1)
    base = instance_scores(t, p)
    peaks = []
    for off in (0, 4000, 2**31 - 100):
        tt, pp = np.where(t > 0, t + off, 0), np.where(p > 0, p + off, 0)
        tracemalloc.start()
        ov = compute_overlap(tt, pp)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert ov.true_ids.min() > off and instance_scores(tt, pp)["pq"] == base["pq"]
    assert max(peaks) < 8 * 1024**2  # ~141 MB for offset 4000 before


def test_bootstrap_memory_is_bounded_and_results_unchanged(monkeypatch):
    import cellbench.analysis.groups as g

    v = np.random.default_rng(1).normal(size=4000)
    one_draw = g.bootstrap_mean(v, n_boot=500)
    monkeypatch.setattr(g, "_BOOT_CELLS", 1 << 12)  # many small blocks
    assert g.bootstrap_mean(v, n_boot=500) == one_draw
    monkeypatch.undo()
    tracemalloc.start()
    g.bootstrap_mean(np.random.default_rng(2).normal(size=100_000), n_boot=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 1024**2  # 1.5 GB (n_boot x n indices) before


def _sample_rows(run_id: str, lo: int, hi: int):
    from cellbench.runs.store import frame

    return frame(
        {
            "run_id": run_id,
            "level": "sample",
            "sample_id": f"s{i:05d}",
            "class": "all",
            "metric": m,
            "value": float(i),
        }
        for i in range(lo, hi)
        for m in ("pq", "aji")
    )


def test_compaction_merges_parts_atomically_and_survives_a_crash(tmp_path):
    """Issue 17 item 3: a run's parts become one file; readers never see both the old parts
    and the merged one; leftovers of an interrupted compaction are ignored, then removed."""
    import shutil

    import polars as pl

    from cellbench.runs.check import check_store
    from cellbench.runs.store import COMPACT_MANIFEST, Store

    st = Store(tmp_path / "s")
    for k in range(20):
        st.append("r1", _sample_rows("r1", k * 5, k * 5 + 5), {f"s{k * 5:05d}": {"k": k}})
    before = st.scan(["r1"]).collect().sort(["sample_id", "metric"])
    results = st.results("r1")
    d = st.metrics_dir / "r1"
    saved = tmp_path / "saved"
    shutil.copytree(d, saved)
    merged = st.compact("r1")
    assert merged is not None and st._parts("r1") == [merged]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        [COMPACT_MANIFEST, merged.name, merged.with_suffix(".json").name]
    )
    after = st.scan(["r1"]).collect().sort(["sample_id", "metric"])
    assert after.equals(before) and st.results("r1") == results
    assert st.done_samples("r1") == {f"s{i:05d}" for i in range(100)}
    # a crash after the switch, before the old parts were deleted: they are ignored
    for p in saved.iterdir():
        shutil.copy(p, d / p.name)
    assert st.scan(["r1"]).collect().height == before.height
    problems = check_store(st, repair=True)
    assert any("interrupted compaction" in p.problem for p in problems)
    assert len(list(d.glob("part-*"))) == 0
    # more parts after a compaction (a resumed run) merge again, with the merged one
    st.append("r1", _sample_rows("r1", 100, 103))
    second = st.compact("r1")
    assert second != merged and not merged.exists() and st._parts("r1") == [second]
    assert st.scan(["r1"]).collect().height == before.height + 6
    assert st.scan(["r1"]).filter(pl.col("sample_id") == "s00102").collect().height == 2


def _overlap_fields(ov):
    return [ov.true_ids, ov.pred_ids, ov.true_area, ov.pred_area, ov.ti, ov.pj, ov.inter]


@pytest.mark.parametrize(
    "dtypes,offset",
    [(("int32", "int32"), 0), (("uint16", "int64"), 4000), (("uint8", "uint32"), 0)],
)
def test_compiled_overlap_equals_the_numpy_path(monkeypatch, dtypes, offset):
    from cellbench.metrics import _kernels
    from cellbench.runs.synthetic import perturb_instances, random_instances

    if not _kernels.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    t = random_instances((300, 280), 90 if dtypes[0] != "uint8" else 40, seed=3)
    p = perturb_instances(t, seed=4, p_merge=0.2, p_split=0.2)  # many 2- and 3-partner ids
    t = t.astype(dtypes[0])
    p = np.where(p > 0, p + offset, 0).astype(dtypes[1])
    fast = compute_overlap(t, p)
    _numpy_path(monkeypatch)
    slow = compute_overlap(t, p)
    for a, b in zip(_overlap_fields(fast), _overlap_fields(slow), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(fast.inter) > len(fast.true_ids)  # some ids really had several partners


def test_compiled_overlap_rejects_negative_ids_and_handles_empty_maps():
    from cellbench.core.errors import DataError

    z = np.zeros((8, 8), np.int32)
    neg = z.copy()
    neg[2, 2] = -3
    with pytest.raises(DataError, match="negative"):
        compute_overlap(z, neg)
    with pytest.raises(DataError, match="negative"):
        compute_overlap(neg, z)
    ov = compute_overlap(z, z)
    assert ov.n_true == ov.n_pred == len(ov.inter) == 0


def test_whole_slide_sized_ids_beyond_int32_pair_keys():
    # ~90k nuclei at 12288^2 give (n_true x n_pred) pair keys beyond 2^31; the same id counts
    # at a smaller size: 70k x 70k = 4.9e9 pair keys, scored as one map
    n_side = 265
    t, p = _many_nuclei(n_side)
    p = np.where(p > 0, p + 15_000, 0)  # pred ids 15k..85k
    assert (int(t.max()) + 1) * (int(p.max()) + 1) > 2**31
    r = instance_scores(t, p, "hovernet")
    assert r["n_true"] == n_side * n_side + 2 and r["tp"] == n_side * n_side


@pytest.mark.parametrize("offset", [0, 5000])
def test_compiled_overlap_over_several_blocks_equals_the_numpy_path(monkeypatch, offset):
    # a map of many blocks of the counting pass (runs crossing a block's end are counted in
    # two pieces), with ids that grow the per-id tables (offset: ids past their first size)
    from cellbench.metrics import _kernels
    from cellbench.runs.synthetic import perturb_instances, random_instances

    if not _kernels.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    t = random_instances((300, 281), 90, seed=8)
    p = perturb_instances(t, seed=9, p_merge=0.2, p_split=0.2)
    t = np.where(t > 0, t + offset, 0)
    p = np.where(p > 0, p + 2 * offset, 0)
    assert t.size > 10 * _kernels.FLAG_BLOCK
    fast = compute_overlap(t, p)
    fields = _kernels.joint_counts(t.ravel(), p.ravel(), 1 << 16, t.shape[1])
    _numpy_path(monkeypatch)
    slow = compute_overlap(t, p)
    for a, b in zip(_overlap_fields(fast), _overlap_fields(slow), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fields[0], slow.true_ids)
    ys, xs = np.nonzero(t == slow.true_ids[-1])
    np.testing.assert_allclose(fields[7][-1], [xs.mean(), ys.mean()])


@pytest.mark.parametrize("length", [1, 2, 63, 64, 65, 127, 128, 129, 8191, 8192, 8193, 8257])
def test_run_starts_at_every_word_and_block_edge(monkeypatch, length):
    # the counting pass reads run starts as bits of 64-pixel words: runs starting on the
    # first and last bit of a word, a block's last pixel and a short tail all count
    from cellbench.metrics import _kernels

    if not _kernels.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    rng = np.random.default_rng(length)
    t = np.repeat(rng.integers(0, 4, length), rng.integers(1, 3, length))[:length]
    p = rng.integers(0, 3, length) * (rng.random(length) < 0.7)
    t, p = t.reshape(1, -1), p.reshape(1, -1)
    fast = compute_overlap(t, p)
    _numpy_path(monkeypatch)
    slow = compute_overlap(t, p)
    for a, b in zip(_overlap_fields(fast), _overlap_fields(slow), strict=True):
        np.testing.assert_array_equal(a, b)


def test_compiled_pass_names_the_map_out_of_range_whatever_comes_first():
    # negative ids are reported for the true map first, as a pass over the range would,
    # even where the predicted map's bad pixel comes earlier; ids past max_ids give None
    from cellbench.metrics import _kernels

    if not _kernels.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    t = np.zeros(40000, np.int32)
    p = np.zeros(40000, np.int32)
    p[10] = -1
    t[30000] = -2
    assert _kernels.joint_counts(t, p, 1 << 16) == "true"
    t[30000] = 70000
    assert _kernels.joint_counts(t, p, 1 << 16) == "pred"
    p[10] = 3
    assert _kernels.joint_counts(t, p, 1 << 16) is None
    assert _kernels.joint_counts(t, p, 1 << 17)[0].tolist() == [70000]


def test_centroids_from_the_compiled_pass_equal_the_pixel_means(monkeypatch):
    # coordinate sums per run, split where a run wraps past a row end (an instance touching
    # the right edge and the next row's left edge)
    from cellbench.metrics import _kernels
    from cellbench.runs.synthetic import perturb_instances, random_instances

    if not _kernels.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    t = random_instances((120, 97), 40, seed=2).astype(np.int32)
    t[10, 90:], t[11, :5] = 77, 77  # one id across a row end
    p = perturb_instances(t, seed=3)
    fast = compute_overlap(t, p, want_centroids=True)
    _numpy_path(monkeypatch)
    slow = compute_overlap(t, p, want_centroids=True)
    for a, b in zip(fast.centroids, slow.centroids, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    k = int(np.flatnonzero(fast.true_ids == 77)[0])
    rr, cc = np.nonzero(t == 77)
    np.testing.assert_allclose(fast.centroids[0][k], [cc.mean(), rr.mean()], atol=1e-12)


def _numpy_path(monkeypatch) -> None:
    """Score through the numpy path from here on (as where numba is absent)."""
    from cellbench.metrics import _kernels, _tile_kernel

    monkeypatch.setattr(_kernels, "LOADED", False)
    monkeypatch.setattr(_kernels, "AVAILABLE", False)
    monkeypatch.setattr(_tile_kernel, "LOADED", False)


def test_small_maps_in_a_fresh_process_do_not_load_numba(tmp_path):
    """A few hundred small tiles are scored without starting numba (its start-up costs more
    than it saves there); one big map loads it, and from then on every map uses it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from cellbench.metrics import instance_scores, _kernels\n"
        "from cellbench.runs.synthetic import random_instances\n"
        "t = random_instances((256, 256), 30, seed=1)\n"
        "instance_scores(t, t)\n"
        "print('numba' in sys.modules, _kernels.LOADED)\n"
        "big = random_instances((600, 600), 200, seed=2)\n"
        "instance_scores(big, big)\n"
        "print('numba' in sys.modules, _kernels.LOADED)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from cellbench.metrics import _kernels

    loaded = "True True" if _kernels.AVAILABLE else "False False"
    assert out.stdout.split("\n")[:2] == ["False False", loaded], out.stdout + out.stderr


def test_small_graph_components_number_as_scipy_does():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from cellbench.metrics._kernels import _small_components

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, e = int(rng.integers(1, 200)), int(rng.integers(0, 150))
        a, b = rng.integers(0, n, e), rng.integers(0, n, e)
        g = coo_matrix((np.ones(e, np.int8), (a, b)), shape=(n, n))
        ref = connected_components(g, directed=False)[1]
        assert np.array_equal(_small_components(a, b, n), ref)


def test_numba_cache_of_a_caller_is_dropped_when_a_kernel_it_calls_changed(monkeypatch):
    # numba keys its cache on the caller's own file: a changed _kernels.py (or lsap.py) under
    # an unchanged _tile_kernel.py would keep running the old kernel's machine code
    from pathlib import Path

    from cellbench.metrics import _kernels, _tile_kernel

    if not _tile_kernel.load():
        pytest.skip("numba is not installed: nothing is cached")
    fns = [_tile_kernel._tile, _tile_kernel._plus]
    flushed = []
    for f in fns:
        monkeypatch.setattr(f._cache, "flush", lambda f=f: flushed.append(f))
    marker = Path(fns[0]._cache._cache_path) / "test_caller.deps"
    marker.write_text("a digest of older kernels")
    try:
        _kernels.drop_stale_cache(fns, "test_caller")
        assert flushed == fns
        assert marker.read_text() != "a digest of older kernels"
        _kernels.drop_stale_cache(fns, "test_caller")  # up to date: kept
        assert flushed == fns
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("width", [0, 281])
def test_a_map_counted_on_two_threads_equals_one_pass(monkeypatch, width):
    # the halves' tables merged: areas, partner slots and overflow (a nucleus meeting many
    # predictions, some counted in each half), ids that grow only the second half's tables,
    # centroids; an out-of-range id in the second half is reported as by one pass
    from cellbench.core import config
    from cellbench.metrics import _kernels, _tile_kernel
    from cellbench.metrics.presets import get_preset
    from cellbench.runs.synthetic import perturb_instances, random_instances

    if not _tile_kernel.load():
        pytest.skip("numba is not installed: only the numpy path exists here")
    monkeypatch.setattr(_kernels, "SPLIT_MIN_PIXELS", 1000)
    monkeypatch.setattr(config, "cpu_workers", lambda: 2)
    t = random_instances((300, 281), 90, seed=3)
    p = perturb_instances(t, seed=4, p_merge=0.3, p_split=0.3)
    p[100:200, :] = np.where(p[100:200, :] > 0, (np.arange(281) // 3 + 1)[None, :], 0)
    t[200:] = np.where(t[200:] > 0, t[200:] + 3000, 0)  # only in the second half
    tr, pr = t.ravel(), p.ravel()
    assert _kernels.split_here(tr.size)
    one = _kernels._joint(tr, pr, 1 << 16, width)
    two = _kernels.joint_fields(tr, pr, 1 << 16, width)
    assert one[0] == two[0] == 0
    for a, b in zip(one[1:], two[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert (np.bincount(one[5]) > 2).any()  # some nucleus met three or more predictions
    pre = get_preset("hovernet", "instance")
    c1, s1 = _tile_kernel._tile(tr, pr, 1 << 16, 0.5, False, False, False, True)
    c2, s2 = _tile_kernel.tile_counts(tr, pr, 0.5, pre)
    np.testing.assert_array_equal(c1, c2)
    assert s1 == s2
    bad = t.copy()
    bad[-1, -1] = -5
    assert _kernels.joint_counts(bad.ravel(), pr, 1 << 16, width) == "true"
    assert _kernels.joint_counts(tr, -p.ravel(), 1 << 16, width) == "pred"
