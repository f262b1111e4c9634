"""Prefect flows of flavor-ml. Importing them (a notebook, a worker) points Prefect and MLflow at
the settings root's places first, as the CLI does: Prefect reads its settings on first import."""

from flavor_ml.environment import configure_libraries
from flavor_ml.settings import load_settings

configure_libraries(load_settings())
