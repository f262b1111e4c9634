"""flavor-ml: learn ingredient embeddings from recipes, track them in MLflow, serve them.

The library is plain Python: every step is callable without Prefect (see :mod:`flavor_ml.pipeline`).
"""

__version__ = "0.1.0"
