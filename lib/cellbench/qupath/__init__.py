"""Layer 7, QuPath interoperability: GeoJSON export of ground truth, predictions and TP/FP/FN
errors (:mod:`~cellbench.qupath.geojson`), project read and write
(:mod:`~cellbench.qupath.project`). Reading QuPath GeoJSON as a dataset format is a reader
(:mod:`cellbench.data.readers.qupath_geojson`).

May import every layer before it; it uses viz for the class and error colours and the error
review, so that QuPath shows exactly what the app shows.
"""
