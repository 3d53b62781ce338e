"""Predict: a model on a slide, an image or a folder, into QuPath GeoJSON, as a background job."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cellbench.app import ui

ui.header(
    "Predict",
    "Segment nuclei on your own slide or image with a model, as a background job: tissue "
    "detection on whole slides, tiles stitched without cut or doubled nuclei, progress that "
    "survives a reload, resume from the finished tiles. The nuclei go to QuPath GeoJSON "
    "(shown in the Dataset explorer's slide viewer) with their nucleus table.",
)

with ui.guard("The prediction form"):
    from cellbench.core import config
    from cellbench.models.registry import is_available, list_models
    from cellbench.qupath.predict import PredictSpec, parse_region, submit_predict_job

    models = [m.id for m in list_models() if is_available(m)]
    slides = [str(s.path) for s in ui.slides(str(config.data_root() / "wsi")) if s.kind == "tissue"]
    with st.form("predict"):
        c = st.columns([2, 3])
        model = c[0].selectbox("Model", models, key="p_model")
        source = c[1].radio(
            "Input",
            ["a slide of the data root", "an image to upload", "a path on this machine"],
            index=0 if slides else 1,  # without data: upload
            horizontal=True,
            key="p_source",
        )
        pick = st.selectbox(
            "Slide (data root's wsi/)",
            slides,
            format_func=lambda p: Path(p).name,
            key="p_slide",
        )
        upload = st.file_uploader(
            "Image (PNG, JPEG, TIFF)", type=["png", "jpg", "jpeg", "tif", "tiff"], key="p_up"
        )
        typed = st.text_input(
            "Path: an image, a whole-slide image or a folder of images", key="p_path"
        )
        c = st.columns(5)
        region = c[0].text_input("Region x,y,w,h (level-0 px)", key="p_region")
        tissue = c[1].checkbox("Tissue only", True, key="p_tissue", help="Whole slides")
        mpp = c[2].number_input("mpp (0: from the file)", 0.0, 10.0, 0.0, key="p_mpp")
        tile = c[3].number_input("Tile (model px)", 128, 4096, 1024, 64, key="p_tile")
        overlap = c[4].number_input("Overlap (model px)", 16, 1024, 128, 16, key="p_overlap")
        c = st.columns(3)
        devices = ui.devices()
        device = c[0].selectbox("Device", devices, key="p_device")
        post = c[1].number_input(
            "Post-processing workers", 0, 64, 0, key="p_post", help="Overlap the network (GPU)"
        )
        project = c[2].checkbox("Also as a QuPath project", False, key="p_project")
        go = st.form_submit_button("Predict", type="primary")

    if go:
        image = folder = None
        if source == "a slide of the data root":
            image = pick
        elif source == "an image to upload":
            if upload is not None:
                import re

                from cellbench.core.atomic import write_bytes_atomic

                name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name).lstrip(".")
                dest = config.home() / "uploads" / (name or "upload.png")
                image = str(write_bytes_atomic(dest, upload.getvalue()))
        elif typed.strip():
            p = ui.confined(typed, "the path")  # inside the data root or the workspace
            folder, image = (str(p), None) if p.is_dir() else (None, str(p))
        if not (image or folder) or not model:
            st.warning("Choose a model and an input.")
        else:
            stem = Path(image or folder).stem
            out = config.home() / "slides" / f"{stem}.{model}.geojson"
            if folder or project:
                out = config.home() / "predictions" / f"{stem}.{model}"
            spec = PredictSpec(
                model=model,
                out=str(out),
                image=image,
                folder=folder,
                region=parse_region(region),
                tissue=tissue,
                mpp=mpp or None,
                qupath_project=bool(project),
                tile=int(tile),
                overlap=int(overlap),
                device=device,
                post_workers=int(post),
            )
            job = submit_predict_job(spec)
            st.success(ui.as_text(f"Started: {model} on {Path(image or folder).name} (job {job})"))


@st.fragment(run_every=2)
def jobs_panel() -> None:
    with ui.guard("The prediction jobs"):
        from cellbench.runs.jobs import list_jobs

        st.subheader("Prediction jobs")
        jobs = [j for j in list_jobs() if j.get("kind") == "predict"]
        if not jobs:
            st.caption("No predictions yet.")
        for j in jobs[:20]:
            c = ui.job_row(j, (5, 2), prefix="p")
            if c is not None:
                for line in j.get("summary") or []:
                    c[0].caption(line)
                for k, f in enumerate(j.get("written") or []):
                    p = Path(f)
                    if p.is_file() and p.suffix in (".geojson", ".parquet"):
                        c[1].download_button(
                            p.name, p.read_bytes(), p.name, key=f"pdl_{j['job_id']}_{k}"
                        )
                with c[1]:
                    ui.link("2_Dataset_explorer.py", "Slide viewer", None, ":material/visibility:")


jobs_panel()
