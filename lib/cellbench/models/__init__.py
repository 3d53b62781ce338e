"""Models: cards and registry, built-in architectures, backends, tiled inference, post-processing.

The inference path (:mod:`~cellbench.models.nets`, :mod:`~cellbench.models.backends`,
:mod:`~cellbench.models.inference`, :mod:`~cellbench.models.postprocess`) needs only numpy,
scipy, scikit-image, torch and onnxruntime, so it runs on GPU machines without the rest.
"""
