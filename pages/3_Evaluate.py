"""Evaluate: models x datasets x split x preset as background jobs, with progress and cancel."""

from __future__ import annotations

import streamlit as st

from cellbench.app import ui

ui.header(
    "Evaluate",
    "Launch evaluations as background jobs. Progress survives a reload; "
    "cancelled or interrupted jobs resume where they stopped.",
)

AUTO = "test split where there is one, else all samples"

with ui.guard("The evaluation form"):
    from cellbench.data.readers import get_reader
    from cellbench.metrics import INSTANCE_PRESETS, POINT_PRESETS
    from cellbench.models.registry import is_available, list_models
    from cellbench.runs.jobs import job_label, job_status, submit_job

    cat = ui.catalog()
    table = ui.sample_table()
    models = [m for m in list_models() if is_available(m)]
    datasets = [
        d.id
        for d in cat
        if cat.is_available(d) and {"instance_segmentation", "detection"} & set(d.tasks)
    ]
    with st.form("launch"):
        c = st.columns(2)
        chosen_models = c[0].multiselect("Models", [m.id for m in models], key="e_models")
        chosen_sets = c[1].multiselect("Datasets", datasets, key="e_datasets")
        stored = {d: get_reader(cat, d).prediction_sets() for d in datasets}
        pred_sets = sorted({f"{d}:{p}" for d, ps in stored.items() for p in ps})
        chosen_preds = st.multiselect(
            "Or stored predictions (dataset:set)", pred_sets, key="e_preds"
        )
        c = st.columns(5)
        splits = sorted(
            {s for s in table["split"].unique().to_list() if s} if table.height else set()
        )
        split = c[0].selectbox("Split", [AUTO, "all", *splits], key="e_split")
        preset = c[1].selectbox(
            "Preset",
            ["default", *INSTANCE_PRESETS, *POINT_PRESETS],
            key="e_preset",
            help="default: hovernet for instances, ocelot for points",
        )
        limit = c[2].number_input("Samples per dataset (0 = all)", 0, 100000, 0, key="e_limit")
        devices = ui.devices()
        device = c[3].selectbox("Device", devices, key="e_device")
        workers = c[4].number_input("Post-processing workers", 1, 64, 1, key="e_workers")
        go = st.form_submit_button("Launch", type="primary")

    if go:
        from cellbench.runs.evaluate import EvalSpec

        def split_of(d: str) -> str | None:
            if split == "all":
                return None
            if split == AUTO:
                have = set(table.filter(table["dataset"] == d)["split"].drop_nulls().to_list())
                return "test" if "test" in have else None
            return split

        requests = [(d, {"model": m}) for m in chosen_models for d in chosen_sets]
        requests += [(p.split(":")[0], {"predictions": p.split(":", 1)[1]}) for p in chosen_preds]
        if not requests:
            st.warning("Choose at least one model and one dataset, or a stored prediction set.")
        for d, src in requests:
            spec = EvalSpec(
                dataset=d,
                split=split_of(d),
                preset=None if preset == "default" else preset,
                limit=limit or None,
                device=device,
                workers=int(workers),
                **src,
            )
            try:
                job = job_status(submit_job(spec))
                if job.get("reused"):
                    st.info(
                        f"{ui.as_text(job['label'])}: this request was evaluated before (run "
                        f"{ui.as_text(job['run_id'])}); nothing was computed, its results are in "
                        "Results."
                    )
                else:
                    st.success(f"Started: {ui.as_text(job['label'])}")
            except Exception as e:  # noqa: BLE001 - one bad combination does not stop the rest
                st.error(ui.as_text(f"{job_label(spec)}: {e}"))


@st.fragment(run_every=2)
def jobs_panel() -> None:
    with ui.guard("The job list"):
        from cellbench.runs.jobs import list_jobs

        st.subheader("Jobs")
        jobs = [j for j in list_jobs() if j.get("kind", "evaluate") == "evaluate"]
        if not jobs:
            st.caption("No jobs yet.")
        for j in jobs[:20]:
            done = ui.job_row(j)
            if done is not None:
                with done[1]:
                    ui.link(
                        "4_Results.py", "Results", {"run": j["run_id"]}, ":material/monitoring:"
                    )

    with ui.guard("The run list"):
        st.subheader("Finished runs")
        runs = ui.runs()  # re-read when the store changes: finished jobs appear here
        if runs.is_empty():
            st.caption("No runs yet.")
        else:
            st.dataframe(ui.runs_overview(runs, ("code_version",)), hide_index=True)


jobs_panel()
