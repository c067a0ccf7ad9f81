"""Entry file for MLflow's "models from code": defines the model object to log."""

import mlflow

from clv.pyfunc import ClvModel

mlflow.models.set_model(ClvModel())
