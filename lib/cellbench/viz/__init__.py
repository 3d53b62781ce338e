"""Layer 6, visualisation: plotly figure builders and publication export
(:mod:`~cellbench.viz.figures`), annotations drawn on images (:mod:`~cellbench.viz.overlay`),
error review of one sample (:mod:`~cellbench.viz.review`) and the notebooks' figure sets
(:mod:`~cellbench.viz.paper`).

May import every layer before it (core, data, metrics, models, runs, analysis).
"""
