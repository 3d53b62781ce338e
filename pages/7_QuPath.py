"""QuPath: export ground truth, predictions and errors as GeoJSON; read projects and files."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import polars as pl
import streamlit as st

from cellbench.app import ui

ui.header(
    "QuPath",
    "GeoJSON that QuPath imports by drag-and-drop (one detection per nucleus, "
    "classes and colours, measurements, TP / FP / FN for error review), QuPath projects, "
    "and reading QuPath files of any version.",
)

with ui.guard("The QuPath export"):
    from cellbench.qupath.geojson import sample_features

    st.subheader("Export objects of a sample")
    cat = ui.catalog()
    table = ui.sample_table()
    avail = [d.id for d in cat if cat.is_available(d)]
    if not avail:
        st.info(f"No dataset is available locally ({ui.data_hint()}).")
    else:
        c = st.columns(4)
        dataset = c[0].selectbox("Dataset", avail, key="q_dataset")
        ids = table.filter(pl.col("dataset") == dataset)["sample_id"].to_list()
        sample = c[1].selectbox("Sample", ids, key="q_sample")
        what = c[2].selectbox(
            "Objects",
            ["gt", "pred", "errors"],
            key="q_what",
            format_func={
                "gt": "ground truth",
                "pred": "prediction of a run",
                "errors": "errors of a run (TP/FP/FN)",
            }.get,
        )
        run = None
        if what != "gt":
            runs = ui.runs()
            runs = (
                runs.filter(pl.col("test_dataset") == dataset)
                if "test_dataset" in runs.columns
                else runs
            )
            labels = ui.run_labels(runs) if runs.height else {}
            run = c[3].selectbox("Run", list(labels), format_func=labels.get, key="q_run")
            if run is None:
                st.info(f"No run on {dataset} yet.")
        if sample and (what == "gt" or run):
            rec = ui.store().get_run(run) if run else None
            feats = sample_features(cat, dataset, sample, what, rec, ui.store())
            counts: dict[str, int] = {}
            for f in feats:
                n = (f["properties"].get("classification") or {}).get("name", "unclassified")
                counts[n] = counts.get(n, 0) + 1
            st.write(f"{len(feats)} objects: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            doc = json.dumps({"type": "FeatureCollection", "features": feats})
            st.download_button(
                "Download GeoJSON",
                doc,
                file_name=f"{sample}_{what}.geojson",
                mime="application/geo+json",
                key="q_dl",
                type="primary",
            )

with ui.guard("The QuPath project export"):
    if avail:
        st.subheader("Export a QuPath project")
        c = st.columns(3)
        n = c[0].number_input("Samples (first N of the dataset)", 1, 200, 4, key="q_n")

        def project_zip() -> bytes:
            from cellbench.data.readers import get_reader
            from cellbench.qupath.project import write_project
            from cellbench.viz.overlay import PALETTE

            recs = get_reader(cat, dataset).records()[: int(n)]
            images = [
                {
                    "path": r.files["image"],
                    "width": r.meta.get("width"),
                    "height": r.meta.get("height"),
                    "mpp": r.meta.get("mpp"),
                    "features": sample_features(cat, dataset, r.sample_id),
                }
                for r in recs
            ]
            classes = {
                cl.name: cl.color or PALETTE[k % 12]
                for k, cl in enumerate(cat.get(dataset).classes)
            }
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / f"{dataset}_qupath"
                write_project(out, images, classes, "files")
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    for p in out.rglob("*"):
                        if p.is_file():
                            z.write(p, p.relative_to(out.parent))
                return buf.getvalue()

        c[1].download_button(
            "Download project (zip)",
            project_zip,
            file_name=f"{dataset}_qupath.zip",
            mime="application/zip",
            key="q_proj",
        )
        st.caption(
            "The project references the images where they are on this machine; run "
            "`scripts/import_cellbench.groovy` in QuPath (Run for project) to add the "
            "objects. With QuPath installed, `cellbench qupath project` writes them "
            "directly through paquo."
        )

with ui.guard("Reading QuPath files"):
    st.subheader("Read a QuPath project or GeoJSON file")
    folder = st.text_input("Project folder (on this machine)", key="q_folder")
    if folder:
        from cellbench.qupath.project import read_project

        p = read_project(folder)
        st.write(f"QuPath {p.version}: {len(p.images)} images, {len(p.classes)} path classes")
        st.dataframe(
            [
                {
                    "entry": i.entry_id,
                    "name": i.name,
                    "width": i.width,
                    "height": i.height,
                    "mpp": i.mpp,
                    "found at": str(i.path or "missing"),
                }
                for i in p.images
            ],
            hide_index=True,
        )
        ui.color_legend(p.classes.items())
    up = st.file_uploader("QuPath GeoJSON (any version)", type=["geojson", "json"], key="q_upload")
    if up is not None:
        from cellbench.core.safety import parse_json
        from cellbench.data.readers.qupath_geojson import parse_qupath_features

        objs = parse_qupath_features(parse_json(up.getvalue(), up.name), up.name)
        summary = pl.DataFrame(
            {
                "type": [o.object_type for o in objs],
                "class": [o.class_name or "unclassified" for o in objs],
                "geometry": [o.geometry.geom_type for o in objs],
            }
        )
        st.write(f"{len(objs)} objects")
        st.dataframe(
            summary.group_by("type", "class", "geometry").len().sort("len", descending=True),
            hide_index=True,
        )
        with st.form("q_import"):
            st.markdown("**Add it to a user dataset** (kept in the workspace's user catalog)")
            img_up = st.file_uploader(
                "The image the objects were drawn on", type=["tif", "tiff", "png", "jpg"]
            )
            c1, c2, c3 = st.columns(3)
            ds_id = c1.text_input("Dataset id", value="my_qupath_data")
            mpp = c2.number_input("Microns per pixel (0: unknown)", min_value=0.0, value=0.0)
            organ = c3.text_input("Organ", value="")
            submitted = st.form_submit_button("Import")
        if submitted:
            if img_up is None:
                st.warning("Choose the image too.")
            else:
                import tempfile
                from pathlib import Path

                from cellbench.data.user_data import import_qupath

                with tempfile.TemporaryDirectory() as tmp:
                    img_path = Path(tmp) / Path(img_up.name).name
                    img_path.write_bytes(img_up.getvalue())
                    gj_path = Path(tmp) / f"{img_path.stem}.geojson"
                    gj_path.write_bytes(up.getvalue())
                    res = import_qupath(
                        gj_path,
                        img_path,
                        ds_id.strip(),
                        mpp=mpp or None,
                        organ=organ.strip() or None,
                    )
                st.success(
                    f"Added {res['sample_id']} ({res['n_objects']} objects) to "
                    f"'{res['dataset']}'; it is listed in the catalog and the sample browser."
                )
                if res["guessed_root"]:
                    st.info(
                        "Mapped to the root class 'nucleus' (no hierarchy node of that name): "
                        + ", ".join(res["guessed_root"])
                        + ". Name their nodes with `cellbench qupath import --class NAME=NODE`."
                    )
