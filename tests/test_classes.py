from pathlib import Path

import pytest

from cellbench.data.catalog import load_catalog
from cellbench.data.classes import class_leaves, label_map, load_hierarchy, shared_level

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return load_catalog(REPO / "data_catalog.yaml", root=tmp_path_factory.mktemp("root"))


def test_tree_shape():
    t = load_hierarchy()
    assert {"nucleus", "oscc_category", "cell"} <= set(t.roots)
    assert t.leaves("macrophage") == {"histiocyte", "melanophage"}
    assert "lymphocyte" in t.leaves("nucleus")
    assert t.ancestors("histiocyte") == ["histiocyte", "macrophage", "inflammatory", "nucleus"]
    assert t.node_for(frozenset({"histiocyte", "melanophage"})) == "macrophage"
    assert t.node_for(frozenset({"lymphocyte", "neutrophil"})) is None


def test_every_class_set_named_in_the_issue_is_mapped(cat):
    for ds in ("pannuke", "monusac", "consep", "puma", "ocelot", "oscc"):
        leaves = class_leaves(cat.get(ds))
        assert leaves and all(leaves.values()), ds
        # classes of one dataset are mutually exclusive
        seen = set()
        for v in leaves.values():
            assert not (v & seen), ds
            seen |= v


def test_consep_seven_to_merged_four(cat):
    consep = cat.get("consep")
    m = label_map(consep.class_set("original7"), consep)
    # other, inflammatory, healthy+malignant epithelial -> epithelial, fibro/muscle/endo -> spindle
    assert m == {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4, 7: 4}
    with pytest.raises(ValueError, match="cannot be mapped to that finer level"):
        label_map(consep, consep.class_set("original7"))


def test_pannuke_to_ocelot_and_unlabelled_classes(cat):
    m = label_map(cat.get("pannuke"), cat.get("ocelot"))
    assert m == {1: 2, 2: 1, 3: 1, 4: 1, 5: 1}  # neoplastic -> TC, the rest -> BC
    # TIGER only labels lymphocytes+plasma cells: PanNuke inflammatory straddles it and more
    with pytest.raises(ValueError):
        label_map(cat.get("pannuke"), cat.get("tiger"))
    m = label_map(cat.get("puma"), cat.get("tiger"))
    assert m[2] == 1 and m[3] == 1 and m[1] is None and m[9] is None


def test_shared_level_between_label_sets(cat):
    shared = {c.name: c for c in shared_level(cat.get("consep"), cat.get("pannuke"))}
    # CoNSeP epithelial (both kinds) joins PanNuke neoplastic + epithelial
    epi = next(c for c in shared.values() if 3 in c.ids_a)
    assert epi.ids_b == (1, 5)
    assert shared["inflammatory"].ids_b == (2,)
    assert shared["connective"].ids_a == (4,)
    # instance-only datasets share one class with anything
    s = shared_level(cat.get("monuseg"), cat.get("consep"))
    assert len(s) == 1 and s[0].ids_b == (1, 2, 3, 4)
    # MoNuSAC vs PUMA: macrophage meets histiocyte + melanophage exactly
    s = {c.name: c for c in shared_level(cat.get("monusac"), cat.get("puma"))}
    assert s["macrophage"].ids_b == (4, 5)
    assert s["lymphocyte"].ids_b == (2,)
    # cytology categories share nothing with nucleus types
    assert shared_level(cat.get("oscc"), cat.get("pannuke")) == []
