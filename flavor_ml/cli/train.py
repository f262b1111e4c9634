"""``flavor-ml train`` and ``flavor-ml sample``."""
from flavor_ml.cli import app  # noqa: F401
