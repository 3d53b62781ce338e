from pathlib import Path

import pytest
import yaml

from cellbench.core.errors import CatalogError
from cellbench.data.catalog import load_catalog, parse_catalog

REPO = Path(__file__).resolve().parent.parent
SEED_DATASETS = {
    "oscc",
    "apacs23",
    "pannuke",
    "monusac",
    "consep",
    "pcns",
    "puma",
    "monuseg",
    "cpm17",
    "tnbc",
    "nuinsseg",
    "dsb2018",
    "cryonuseg",
    "nucfuse_train",
    "nucfuse_test",
    "ocelot",
    "tiger",
}
#: Datasets beyond the seeds, with local data in ../shared/data (issue 16).
EXTRA_DATASETS = {"gbm", "isbi2014_edf", "isbi2014_synthetic"}


def _entry(**over):
    e = {
        "id": "toy",
        "name": "Toy",
        "citation": "c",
        "license": "MIT",
        "url": "u",
        "tasks": ["instance_segmentation"],
        "stain": ["H&E"],
        "modality": "brightfield",
        "organs": ["colon"],
        "obtain": "make it",
        "classes": [{"id": 1, "name": "nucleus", "nodes": ["nucleus"]}],
    }
    e.update(over)
    return e


def _parse(entries, tmp_path):
    return parse_catalog(yaml.safe_dump({"datasets": entries}), tmp_path / "cat.yaml", tmp_path)


def test_repo_catalog_has_every_seed_dataset(tmp_path):
    cat = load_catalog(REPO / "data_catalog.yaml", root=tmp_path)
    assert set(cat.ids) == SEED_DATASETS | EXTRA_DATASETS
    for d in (d for d in cat if d.id in SEED_DATASETS):
        assert d.citation and d.license and d.url and d.obtain and d.classes, d.id
        assert d.paper, f"{d.id} lacks paper facts"
    # nothing is available under an empty root, and unavailable entries say how to get them
    assert not any(cat.is_available(d) for d in cat)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("datasets:\n  - id: x\n    name: [unclosed\n")
    with pytest.raises(CatalogError) as e:
        load_catalog(p, root=tmp_path)
    assert str(p) in str(e.value) and "malformed YAML at line" in str(e.value)


def test_missing_field_names_entry_and_field(tmp_path):
    e = _entry()
    del e["license"]
    with pytest.raises(CatalogError, match=r"dataset 'toy': field 'license': Field required"):
        _parse([e], tmp_path)


def test_wrong_type_and_unknown_field(tmp_path):
    with pytest.raises(CatalogError, match=r"field 'mpp'"):
        _parse([_entry(mpp="fast")], tmp_path)
    with pytest.raises(CatalogError, match=r"field 'colour'"):
        _parse([_entry(colour="red")], tmp_path)
    with pytest.raises(CatalogError, match=r"field 'modality'"):
        _parse([_entry(modality="xray")], tmp_path)


def test_unknown_hierarchy_node_and_duplicates(tmp_path):
    bad = _entry(classes=[{"id": 1, "name": "blob", "nodes": ["blobocyte"]}])
    with pytest.raises(CatalogError, match="unknown hierarchy node 'blobocyte'"):
        _parse([bad], tmp_path)
    with pytest.raises(CatalogError, match="duplicate id"):
        _parse([_entry(), _entry()], tmp_path)
    two = [{"id": 1, "name": "a", "nodes": ["dead"]}, {"id": 1, "name": "b", "nodes": ["other"]}]
    with pytest.raises(CatalogError, match="class ids must be unique"):
        _parse([_entry(classes=two)], tmp_path)


def test_locations_cannot_escape_root(tmp_path):
    with pytest.raises(CatalogError, match="relative to the data root"):
        _parse([_entry(local={"format": "coco", "location": "../etc"})], tmp_path)
    with pytest.raises(CatalogError, match="relative to the data root"):
        _parse([_entry(local={"format": "coco", "location": "/etc"})], tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    cat = parse_catalog(
        yaml.safe_dump({"datasets": [_entry(local={"format": "coco", "location": "link"})]}),
        tmp_path / "c.yaml",
        root,
    )
    with pytest.raises(CatalogError, match="escapes the data root"):
        cat.location("toy")


def test_unknown_dataset_lists_known(tmp_path):
    cat = _parse([_entry()], tmp_path)
    with pytest.raises(CatalogError, match="no dataset 'nope'; known: toy"):
        cat.get("nope")


def test_shared_catalog_availability(catalog):
    avail = {d.id for d in catalog if catalog.is_available(d)}
    assert avail == {
        "monuseg",
        "consep",
        "ocelot",
        "cryonuseg",
        "dsb2018",
        "gbm",
        "monusac",
        "isbi2014_edf",
        "isbi2014_synthetic",
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\nb: No\nc: ~\nd: 0x1F\ne: 1_000\nf: .inf\n",
        "- 1\n- '2'\n- 3.0\n- +4\n- -.5\n- 1e3\n- 0777\n- 1:30\n",
        "a: |\n  x\n  y\nb: 'yes'\nc: \"3\"\nd:\ne: null\n",
        "x: &a [1]\ny: *a\n",  # aliases: read by the full loader
        "g: 2020-01-01\n",  # timestamps too
        "nested: {a: [1, {b: [true, false]}], c: []}\n",
    ],
)
def test_the_plain_yaml_path_reads_what_safe_load_reads(text):
    """load_yaml builds plain documents from libyaml's events (4x faster on a 10,000-entry
    catalog); the objects must be exactly yaml.safe_load's."""
    import yaml

    from cellbench.core.safety import load_yaml

    got = load_yaml(text, "x.yaml")
    ref = yaml.safe_load(text)
    assert got == ref and repr(got) == repr(ref)


def test_every_yaml_file_of_the_repository_reads_as_before():
    import yaml

    from cellbench.core.safety import load_yaml

    root = Path(__file__).resolve().parent.parent
    files = [root / "data_catalog.yaml", *sorted((root / "models").glob("*/*.yaml"))]
    for f in files:
        text = f.read_text()
        assert repr(load_yaml(text, f)) == repr(yaml.safe_load(text)), f
