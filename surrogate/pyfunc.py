"""The trained ensemble as an MLflow pyfunc model, so that a registered version can be loaded and queried.

Input: a DataFrame with columns `design` and `conditions` (JSON of sim.design.Design / Conditions) and
optionally `fidelity`. Output: one row per (input row, field, species present) with the predicted flux
(ions/ns, from the mean on the asinh scale) and mean/std/epistemic/aleatoric on the asinh scale.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from porelab.sim.design import Conditions, Design
from porelab.surrogate.dataset import Samples
from porelab.surrogate.targets import SPECIES_NAMES


class SurrogatePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from porelab.surrogate.ensemble import DeepEnsemble

        self.model = DeepEnsemble.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        designs = [Design.model_validate_json(s) for s in model_input["design"]]
        conds = [Conditions.model_validate_json(s) for s in model_input["conditions"]]
        fidelity = model_input["fidelity"].iloc[0] if "fidelity" in model_input else "continuum"
        samples = Samples.from_queries(designs, conds, fidelity, self.model.settings)
        p = self.model.predict(samples)
        flux = self.model.transform.inverse(p.mean)
        rows = []
        for i in range(len(samples)):
            for s in np.flatnonzero(p.present[i]):
                rows.append({"row": int(samples.group[i]), "field_V_per_nm": float(samples.field[i]),
                             "species": SPECIES_NAMES[s], "flux_per_ns": float(flux[i, s]),
                             "y_mean": float(p.mean[i, s]), "y_std": float(p.std[i, s]),
                             "y_epistemic_std": float(p.epistemic_std[i, s]),
                             "y_aleatoric_std": float(p.aleatoric_std[i, s])})
        return pd.DataFrame(rows)
