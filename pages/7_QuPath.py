"""QuPath: export ground truth, predictions and errors as GeoJSON; read projects and files."""

from __future__ import annotations

import io
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
        st.info(f"No dataset is available locally ({ui.as_text(ui.data_hint())}).")
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
                st.info(f"No run on {ui.as_text(dataset)} yet.")
        if sample and (what == "gt" or run):
            rec = ui.store().get_run(run) if run else None
            feats = sample_features(cat, dataset, sample, what, rec, ui.store())
            counts: dict[str, int] = {}
            for f in feats:
                n = (f["properties"].get("classification") or {}).get("name", "unclassified")
                counts[n] = counts.get(n, 0) + 1
            st.write(
                f"{len(feats)} objects: "
                + ui.as_text(", ".join(f"{k} {v}" for k, v in counts.items()))
            )
            ui.geojson_button(
                "Download GeoJSON",
                dataset,
                sample,
                what,
                rec,
                key="q_dl",
                features=feats,
                type="primary",
            )

with ui.guard("The QuPath project export"):
    if avail and (what == "gt" or run):
        from cellbench.data.samples import records

        st.subheader("Export a QuPath project")
        recs = records(cat, dataset)
        splits = sorted({r.split for r in recs if r.split})
        scopes = ["this sample", *(f"split {x}" for x in splits), "all samples", "chosen samples"]
        c = st.columns([1, 2])
        scope = c[0].radio("Images", scopes, key="q_scope")
        if scope == "chosen samples":
            chosen = c[1].multiselect(
                "Samples", [r.sample_id for r in recs], default=[sample], key="q_chosen"
            )
            picked = [r for r in recs if r.sample_id in set(chosen)]
        elif scope == "this sample":
            picked = [r for r in recs if r.sample_id == sample]
        elif scope == "all samples":
            picked = recs
        else:
            picked = [r for r in recs if r.split == scope.removeprefix("split ")]
        kind = {"gt": "ground truth", "pred": "predictions", "errors": "TP / FP / FN"}[what]
        c[1].caption(
            f"{len(picked)} image(s) with their {kind}"
            + (f" of run {run}" if run else "")
            + ". The project references the images where they are on this machine and is "
            "written to the workspace (so its location stays valid); the zip is that folder."
        )
        if st.button(f"Write the project ({len(picked)} images)", key="q_proj_go"):
            import datetime

            from cellbench.core import config
            from cellbench.qupath.project import export_samples

            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = config.home() / "qupath" / f"{dataset}_{what}_{stamp}"
            with st.spinner(f"Writing {len(picked)} image(s) and their objects ..."):
                n, used = export_samples(
                    cat,
                    dataset,
                    picked,
                    out,
                    what,
                    ui.store().get_run(run) if run else None,
                    ui.store(),
                    "files",
                )
            st.session_state["q_written"] = str(out)
            st.success(
                f"Wrote a QuPath project of {n} image(s) to {ui.as_text(out)} ({ui.as_text(used)})."
            )
        written = st.session_state.get("q_written")
        if written and Path(written).is_dir():

            def project_zip() -> bytes:
                buf = io.BytesIO()
                root = Path(written)
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    for p in root.rglob("*"):
                        if p.is_file():
                            z.write(p, p.relative_to(root.parent))
                return buf.getvalue()

            st.download_button(
                "Download the project (zip)",
                project_zip,
                file_name=f"{Path(written).name}.zip",
                mime="application/zip",
                key="q_proj",
            )
            st.caption(
                f"Open {ui.as_text(written)}/project.qpproj in QuPath and run "
                "`scripts/import_cellbench.groovy` (Run for project) to add the objects. With "
                "QuPath installed, `cellbench qupath project` writes them directly through paquo."
            )

with ui.guard("Reading QuPath files"):
    st.subheader("Read a QuPath project or GeoJSON file")
    folder = st.text_input("Project folder (on this machine)", key="q_folder")
    if folder:
        from cellbench.qupath.project import read_project

        p = read_project(ui.confined(folder, "the project folder"))
        st.write(
            f"QuPath {ui.as_text(p.version)}: {len(p.images)} images, {len(p.classes)} path classes"
        )
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
    up = st.file_uploader(
        "QuPath GeoJSON (any version)", type=["geojson", "json", "gz"], key="q_upload"
    )
    if up is not None:
        from cellbench.viz.slide import read_objects

        skipped: list[str] = []
        objs = read_objects(up.getvalue(), up.name, skipped)
        if skipped:
            st.warning(
                f"{len(skipped)} feature(s) could not be read and are left out; the first: "
                + ui.as_text(skipped[0])
            )
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
                    f"Added {ui.as_text(res['sample_id'])} ({res['n_objects']} objects) to "
                    f"'{ui.as_text(res['dataset'])}'; it is listed in the catalog and the sample "
                    "browser."
                )
                if res["guessed_root"]:
                    st.info(
                        "Mapped to the root class 'nucleus' (no hierarchy node of that name): "
                        + ", ".join(res["guessed_root"])
                        + ". Name their nodes with `cellbench qupath import --class NAME=NODE`."
                    )
