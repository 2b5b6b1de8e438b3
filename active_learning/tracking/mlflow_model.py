"""MLflow "model from code" for a campaign's surrogate (no pickle): the registered model loads the saved
CampaignModel from its `model` artifact and predicts from a DataFrame with JSON columns `design` and
`conditions`, returning `<target>_mean`, `<target>_std` columns (natural-log targets, see targets.py).
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd

from porelab.active_learning.campaign.model import CampaignModel
from porelab.sim.design import Conditions, Design


class SurrogateModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model = CampaignModel.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        pairs = [(Design.model_validate(json.loads(d)), Conditions.model_validate(json.loads(c)))
                 for d, c in zip(model_input["design"], model_input["conditions"], strict=True)]
        pred = self.model.predict(pairs)
        cols = {}
        for t in self.model.targets:
            cols[f"{t}_mean"], cols[f"{t}_std"] = pred.mean[t], pred.std[t]
        return pd.DataFrame(cols)


mlflow.models.set_model(SurrogateModel())
