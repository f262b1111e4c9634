"""The full stack as local processes (``flavor-ml stack``): the same services as docker-compose.yml.

- :mod:`~flavor_ml.stack.config` - ports, databases, bucket, pool (``FLAVOR_*``, compose's defaults)
- :mod:`~flavor_ml.stack.credentials` - secrets from the environment or generated once, 0600
- :mod:`~flavor_ml.stack.services` - each service: command, environment, port, health URL, dependencies
- :mod:`~flavor_ml.stack.native` - ``up``, ``down``, ``status`` with a state file and one log folder
- :mod:`~flavor_ml.stack.processes` - sessions, pid identity, SIGTERM-then-SIGKILL of a whole family
- :mod:`~flavor_ml.stack.databases` - PostgreSQL databases named after the home, each recording its owning stack
- :mod:`~flavor_ml.stack.bucket` - the S3 bucket
- :mod:`~flavor_ml.stack.credential_checks` - proof that each service accepts the credentials handed out
- :mod:`~flavor_ml.stack.mlflow_auth` - MLflow's basic-auth app with the admin from the environment
- :mod:`~flavor_ml.stack.moto_s3` - moto's S3 server with credentials enforced (when MinIO is absent)

Nothing here imports Prefect or MLflow at import time; the services are separate processes.
"""

from flavor_ml.stack.config import StackSettings, load_settings
from flavor_ml.stack.errors import StackError
from flavor_ml.stack.native import ServiceStatus, down, status, up

__all__ = ["StackSettings", "load_settings", "StackError", "ServiceStatus", "up", "down", "status"]
