"""The surrogate as a table service, and its MLflow model (the same for `porelab train` and campaigns).

Input: a DataFrame with JSON columns `design` and `conditions` (sim.design.Design / Conditions), or flat columns
instead (FLAT: `layers` such as "COO-/NH3+", `spacing_nm`, `groups_per_rim`, ..., `electrolyte` such as
"K+:1.0,Cl-:1.0" and `field_V_per_nm`, the |E| asked at +E and -E; a design field left out takes Design's default),
and optionally `fidelity` (default: the model's). Output: one row per input row and |E| at which its conditions have
both signs: `row` (input row), `field_abs_V_per_nm`, `training_similarity` (in [0, 1]: 1 at a training design, ~0
unlike all of them; surrogate.novelty's kernel on the descriptors, either orientation), `guessing` (True when the
design is unlike the training designs, similarity < GUESS_SIMILARITY, or an interval of ICR or ON current spans more
than a factor GUESS_SPAN: the answer is then the model's prior more than what it learned), `icr` and `on_current_nA`
(from the mean fluxes), and per species s and sign `flux_per_ns[s][+E]` etc. (NaN for a species absent from the
electrolyte), each with its 95 % interval `<column>_lo`, `<column>_hi` (as in every porelab table). Intervals: mean
+- 1.96 total std on the scale the model predicts (ln ICR, ln current, asinh flux), mapped back; ICR and ON current
come from surrogate.derived. A design that gives no geometry (`sheet_nm`, `box_z_nm`) takes the one every training
design shares (the campaign's preset), never Design's own default (a question the model was never trained on); a
model trained on several geometries needs it given. Bad input raises ValueError with a one-line reason naming the
row.

`log_model` logs a model directory (surrogate.store) as an MLflow "model from code" (surrogate/pyfunc.py, no
pickled instance) with a signature and an input example.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from porelab.sim.design import Conditions, Design
from porelab.surrogate.dataset import Samples
from porelab.surrogate.derived import derive
from porelab.surrogate.descriptors import design_descriptors
from porelab.surrogate.novelty import NoveltyFloor
from porelab.surrogate.store import SavedModel, load_model
from porelab.surrogate.targets import SPECIES_NAMES, Z95

PYFUNC_CODE = Path(__file__).with_name("pyfunc.py")  # the models-from-code file MLflow copies and runs
SIGNS = ("+E", "-E")
GUESS_SIMILARITY = 0.5  # below: farther from every training design than the data's own spacing (novelty.py)
GUESS_SPAN = 100.0  # a 95 % interval wider than a factor 100 (two decades) says little
GEOMETRY = ("sheet_nm", "box_z_nm")
# flat input: one column per design field (pore as pore_shape/pore_width_nm/pore_height_nm, layers as "COO-/NH3+"),
# and the conditions as electrolyte ("K+:1.0,Cl-:1.0" or JSON), field_V_per_nm (|E|, asked at +E and -E) and
# temperature_K; any may be left out: a design field takes Design's default, the geometry the training designs'
FLAT = {"material": "string", "layers": "string", "spacing_nm": "double", "groups_per_rim": "long",
        "sheet_nm": "double", "box_z_nm": "double", "pore_shape": "string", "pore_width_nm": "double",
        "pore_height_nm": "double", "bn_charge_e": "double", "electrolyte": "string", "field_V_per_nm": "double",
        "temperature_K": "double"}


def output_columns() -> list[str]:
    cols = ["row", "field_abs_V_per_nm", "training_similarity", "guessing", "icr", "icr_lo", "icr_hi",
            "on_current_nA", "on_current_nA_lo", "on_current_nA_hi"]
    for s in SPECIES_NAMES:
        for sign in SIGNS:
            cols += [f"flux_per_ns[{s}][{sign}]", f"flux_per_ns[{s}][{sign}]_lo", f"flux_per_ns[{s}][{sign}]_hi"]
    return cols


def predict_frame(saved: SavedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The output table (see the module docstring) for the input table `frame`."""
    frame = _json_columns(frame)
    trained = {tuple(getattr(m.design, g) for g in GEOMETRY) for m in saved.training}
    designs, conds = [], []
    for i, (d, c) in enumerate(zip(frame["design"], frame["conditions"], strict=True)):
        d = _with_geometry(d, trained, i)
        designs.append(_parse(Design, d, f"row {i}: design"))
        conds.append(_parse(Conditions, c, f"row {i}: conditions"))
    fids = list(frame["fidelity"]) if "fidelity" in frame else [saved.fidelity] * len(designs)
    rows = []
    for fid in dict.fromkeys(fids):
        idx = [i for i, f in enumerate(fids) if f == fid]
        rows += _rows(saved, [designs[i] for i in idx], [conds[i] for i in idx], fid, idx)
    out = pd.DataFrame(rows, columns=output_columns())
    out["training_similarity"] = training_similarity(saved, designs)[out["row"].to_numpy(int)]
    span = lambda lo, hi: (out[hi] / out[lo].where(out[lo] > 0)).fillna(np.inf)  # noqa: E731
    out["guessing"] = ((out["training_similarity"] < GUESS_SIMILARITY) | (span("icr_lo", "icr_hi") > GUESS_SPAN)
                       | (span("on_current_nA_lo", "on_current_nA_hi") > GUESS_SPAN))
    return out.sort_values(["row", "field_abs_V_per_nm"], kind="stable").reset_index(drop=True)


def _json_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its design and conditions as JSON columns: as given, or built from the flat columns (FLAT)."""
    given = [c for c in FLAT if c in frame and frame[c].notna().any()]
    if "design" in frame and "conditions" in frame:
        return frame
    if "design" in frame or "conditions" in frame or not given:
        raise ValueError("input: give the columns design and conditions (JSON of sim.design.Design and Conditions), "
                         f"or flat columns ({', '.join(FLAT)})")
    out = frame.copy()
    out["design"] = [json.dumps(_flat_design(r)) for r in frame.to_dict("records")]
    out["conditions"] = [json.dumps(_flat_conditions(r, i)) for i, r in enumerate(frame.to_dict("records"))]
    return out


def _given(row: dict, key: str):
    v = row.get(key)
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v.item() if hasattr(v, "item") else v


def _flat_design(row: dict) -> dict:
    doc = {k: _given(row, k) for k in ("material", "spacing_nm", "groups_per_rim", "sheet_nm", "box_z_nm",
                                       "bn_charge_e")}
    layers = _given(row, "layers")
    if layers is not None:
        doc["layers"] = json.loads(layers) if str(layers).startswith("[") else str(layers).split("/")
    pore = {k: _given(row, f"pore_{k}") for k in ("shape", "width_nm", "height_nm")}
    if any(v is not None for v in pore.values()):
        doc["pore"] = {k: v for k, v in pore.items() if v is not None}
    return {k: v for k, v in doc.items() if v is not None}


def _flat_conditions(row: dict, i: int) -> dict:
    e, text = _given(row, "field_V_per_nm"), _given(row, "electrolyte")
    if e is None or text is None:
        raise ValueError(f"row {i}: flat input needs electrolyte (e.g. 'K+:1.0,Cl-:1.0') and field_V_per_nm")
    try:
        ions = json.loads(text) if str(text).lstrip().startswith("{") else \
            {k.strip(): float(v) for k, v in (p.split(":") for p in str(text).split(","))}
    except ValueError:
        raise ValueError(f"row {i}: electrolyte {text!r}: give 'ion:mol/L,...' such as 'K+:1.0,Cl-:1.0'") from None
    doc = {"electrolyte": ions, "fields_V_per_nm": [abs(e), -abs(e)]}
    if (t := _given(row, "temperature_K")) is not None:
        doc["temperature_K"] = t
    return doc


def _with_geometry(text: str, trained: set[tuple], row: int) -> str:
    """The design JSON of `row` with the geometry the model was trained on where it gives none (all its training
    designs share one: the campaign's preset); ValueError when they do not."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return text  # _parse names the problem
    absent = [g for g in GEOMETRY if isinstance(doc, dict) and g not in doc]
    if not absent:
        return text
    if len(trained) != 1:
        raise ValueError(f"row {row}: design gives no {' or '.join(absent)}; give the geometry (this model was "
                         f"trained on {len(trained)} geometries, {', '.join(map(str, sorted(trained)))})")
    return json.dumps(doc | {g: v for g, v in zip(GEOMETRY, next(iter(trained)), strict=True) if g in absent})


def _parse(cls, text: str, what: str):
    """`cls` from its JSON, or ValueError with the first problem in one line."""
    try:
        return cls.model_validate_json(text)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        raise ValueError(f"{what}: {where + ': ' if where else ''}{e['msg']}") from None


def training_similarity(saved: SavedModel, designs: list[Design]) -> np.ndarray:
    """Similarity (n,) in [0, 1] of each design (either orientation) to the nearest training design."""
    if "similarity" not in saved.derived:  # once per loaded model: MLflow's logging predicts with it twice
        train = list({m.design_id: m.design for m in saved.training if m.status == "ok"}.values())
        saved.derived["similarity"] = NoveltyFloor(np.array([design_descriptors(d) for d in train]), {}) \
            if len(train) >= 2 else None
    floor = saved.derived["similarity"]
    if floor is None:
        return np.zeros(len(designs))
    x = np.array([design_descriptors(d) for d in designs])
    xm = np.array([design_descriptors(d.mirrored()) for d in designs])
    return np.maximum(floor.similarity(x), floor.similarity(xm))


def _rows(saved: SavedModel, designs: list[Design], conds: list[Conditions], fidelity: str, index: list[int]):
    model = saved.model
    q = Samples.from_queries(designs, conds, fidelity, model.settings, model.transform)
    p = model.predict(q)
    on, off, fabs = q.icr_pairs()
    t = derive(p, q, on, off, ("log_icr", "log_on_current"))
    tr = p.transform
    lo, hi = tr.inverse(p.mean - Z95 * p.std), tr.inverse(p.mean + Z95 * p.std)
    flux = np.where(p.present, tr.inverse(p.mean), np.nan)
    lo, hi = np.where(p.present, lo, np.nan), np.where(p.present, hi, np.nan)
    out = []
    for k in range(len(on)):
        r = [index[int(q.group[on[k]])], float(fabs[k]), np.nan, False]
        for name in ("log_icr", "log_on_current"):
            m, sd = t[name][0][k], t[name][1][k]
            r += [float(np.exp(m)), float(np.exp(m - Z95 * sd)), float(np.exp(m + Z95 * sd))]
        for s in range(len(SPECIES_NAMES)):
            for i in (on[k], off[k]):
                r += [float(flux[i, s]), float(lo[i, s]), float(hi[i, s])]
        out.append(r)
    return out


def input_example(saved: SavedModel) -> pd.DataFrame:
    """One training question (design and conditions) as an input table."""
    m = saved.training[0]
    return pd.DataFrame({"design": [m.design.model_dump_json()], "conditions": [m.conditions.model_dump_json()]})


def log_model(model_dir: str | Path, name: str = "model", registered_model_name: str | None = None):
    """Log the model directory as an MLflow model from code in the active run; returns MLflow's ModelInfo."""
    import mlflow  # MLflow (seconds to import) only when a model is logged; predict_frame runs without it
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    saved = load_model(model_dir)
    example = input_example(saved)
    with warnings.catch_warnings():  # MLflow's hints (type hints, integer columns) are notices, not errors
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        inputs = Schema([ColSpec("string", c, required=False) for c in ("design", "conditions", "fidelity")]
                        + [ColSpec(t, c, required=False) for c, t in FLAT.items()])  # JSON or flat columns
        signature = ModelSignature(inputs, infer_signature(example, predict_frame(saved, example)).outputs)
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(PYFUNC_CODE), artifacts={"model": str(model_dir)}, signature=signature,
            input_example=example, registered_model_name=registered_model_name,
            pip_requirements=_requirements(saved),
            metadata={"porelab_kind": saved.kind, "porelab_featuriser": saved.info["featuriser"]})


def _requirements(saved: SavedModel) -> list[str]:
    reqs = ["porelab"]
    if saved.kind == "gnn":
        import torch  # their versions, for a GNN only (a descriptor model needs neither)
        import torch_geometric

        reqs += [f"torch=={torch.__version__.split('+')[0]}", f"torch-geometric=={torch_geometric.__version__}"]
    return reqs
