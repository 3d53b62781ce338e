"""Home: what is in the catalog, what is available here, models, recent runs, running jobs."""

from __future__ import annotations

import streamlit as st

from cellbench.app import ui

ui.header(
    "cellbench", "Multi-source cell and nucleus datasets: catalog, evaluation, comparison, QuPath."
)

with ui.guard("The overview"):
    rows = ui.catalog_rows()  # never waits: datasets not listed yet show no count
    n_avail = sum(r["available"] for r in rows)
    unlisted = [r["id"] for r in rows if r["n_samples"] is None]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Datasets in catalog", len(rows))
    c2.metric("Available locally", n_avail)
    c3.metric("Local samples", sum(r["n_samples"] or 0 for r in rows) if not unlisted else "…")
    runs = ui.runs()
    c4.metric("Evaluation runs", runs.height)
    st.caption(
        f"Catalog {ui.as_text(ui.catalog().path)} · {ui.as_text(ui.data_hint())} (set "
        f"`CELLBENCH_DATA`) · workspace {ui.as_text(ui.store().root.parent)} (set `CELLBENCH_HOME`)"
    )

    def organs(names: list[str]) -> str:
        return ", ".join(names) if len(names) <= 3 else f"{len(names)} organs"

    st.subheader("Datasets")
    st.caption("Licences, tasks, class sets and how to obtain each dataset: the Catalog page.")
    if unlisted:
        ui.listed("The sample counts")
    ui.table(
        [
            {
                "id": r["id"],
                "name": r["name"] if len(r["name"]) <= 40 else r["name"][:39] + "…",
                "here": r["available"],
                "samples": "listing ..." if r["n_samples"] is None else r["n_samples"],
                "stain": ", ".join(r["stain"]),
                "organs": organs(r["organs"]),
            }
            for r in sorted(rows, key=lambda r: (not r["available"], r["id"]))
        ],
    )

with ui.guard("The model list"):
    from cellbench.models.registry import model_row, scan_models

    st.subheader("Models")
    cards, problems = scan_models()
    for e in problems:
        st.warning(f"Skipped a model: {ui.as_text(e)}")
    models = [model_row(c) for c in cards]
    ui.table(
        [
            {k: m[k] for k in ("id", "kind", "output", "mpp", "train_datasets", "available")}
            for m in models
        ],
    )

with ui.guard("The run list"):
    st.subheader("Recent runs")
    if runs.is_empty():
        st.info(
            "No evaluation runs yet: start one on the Evaluate page or with `cellbench evaluate`."
        )
    else:
        ui.table(
            [
                {
                    "run": ui.run_label(r),
                    "status": r.get("status"),
                    "finished": (r.get("finished") or "")[:16].replace("T", " "),
                }
                for r in runs.head(10).to_dicts()
            ]
        )

with ui.guard("The job list"):
    from cellbench.runs.jobs import list_jobs

    active = [j for j in list_jobs() if j["status"] in ("queued", "loading", "running")]
    st.subheader("Running jobs")
    if not active:
        st.caption("No job is running.")
    for j in active:
        ui.job_progress(j)

# what the next pages load and read (tables' and figures' lazy imports, the sample table once
# listed), in the background while the user reads Home: their first visit then skips it
ui.prefetch(ui.warm, [()])
ui.prefetch_sample_table()
