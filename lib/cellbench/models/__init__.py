"""Layer 3, models: cards and registry, built-in architectures, backends, tiled inference,
post-processing, training (:mod:`~cellbench.models.train`) and the label-set-aware losses
(:mod:`~cellbench.models.losses`).

May import :mod:`cellbench.core`, :mod:`cellbench.data` and :mod:`cellbench.metrics` (training
validates with PQ). The inference path (:mod:`~cellbench.models.nets`,
:mod:`~cellbench.models.backends`, :mod:`~cellbench.models.inference`,
:mod:`~cellbench.models.postprocess`) needs only numpy, scipy, scikit-image, torch and
onnxruntime, so it runs on GPU machines without the rest.
"""
