"""Model-from-code entry point that MLflow executes when it loads a logged flavor-ml model.

Loading needs ``flavor_ml`` installed; nothing is unpickled.
"""

import mlflow

from flavor_ml.model import IngredientEmbeddingsModel

mlflow.models.set_model(IngredientEmbeddingsModel())
