"""Prefect flows of flavor-ml. Importing them (a command, a notebook, a worker) points Prefect and
MLflow at the settings root's places first: Prefect reads its settings on first import. Without a
PREFECT_API_URL that is the home's background Prefect server, started on first use."""

from flavor_ml.environment import configure_libraries
from flavor_ml.settings import load_settings

configure_libraries(load_settings(), start_prefect=True)
