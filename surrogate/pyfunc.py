"""MLflow "model from code" for every porelab surrogate (logged by surrogate.serving.log_model; no pickled
instance): loads the model directory logged as the artifact `model` (surrogate.store) and answers tables of
designs and conditions (surrogate.serving.predict_frame). MLflow runs this file; porelab never imports it.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from porelab.surrogate.serving import predict_frame
from porelab.surrogate.store import load_model


class SurrogatePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.saved = load_model(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            return predict_frame(self.saved, model_input)
        except ValueError as err:  # bad input: an HTTP 400 whose message is the reason, not a stack trace
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(SurrogatePyfunc())
