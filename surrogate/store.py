"""The one model directory, for every kind of surrogate: written by `porelab train` and by campaigns, read by
`porelab design`, by campaigns and by the MLflow model (surrogate.pyfunc).

    model.json                 format, kind, params (the constructor keywords), species, flux_scale_per_ns,
                               featuriser (graph settings hash or descriptor version), fidelity of queries,
                               fidelity_model (a surrogate.fidelity.FidelityModel's keywords, else absent),
                               goal (a campaign's, else null), training (file, sha256, counts, design ids),
                               weights (GNN: file, sha256), state (GNN: epochs, losses, history), provenance
    training-<sha16>.json      the training measurements (a JSON list of sim.measurement.Measurement)
    weights-<sha16>.pt         GNN only: tensors (weights, y scale, calibration), torch.load(weights_only=True)

No pickle anywhere: an RF or GP is refitted on load from its training measurements (same samples, same seed:
the same model); so is everything of a FidelityModel but a GNN base's weights. The data files are named by their
content and written first; model.json is written last (atomically) and names them, so a save killed half-way leaves
the previous model whole; files no model.json names are removed after a save.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from porelab.base.files import atomic_write_bytes, atomic_write_text
from porelab.sim.measurement import Measurement
from porelab.surrogate.factory import KINDS, featuriser, model_kind, new_model
from porelab.surrogate.targets import SPECIES_NAMES
from porelab.surrogate.training_set import main_fidelity, training_samples

FORMAT = 1
MODEL_FILE = "model.json"
_TRAINING = TypeAdapter(list[Measurement])


def _fidelity_keywords(model) -> dict | None:
    """A FidelityModel's own keywords (not its base model's), else None."""
    if not hasattr(model, "base_params"):  # only a FidelityModel wraps a base model
        return None
    return {k: v for k, v in model.get_params().items() if k not in ("kind", "params", "seed")}


@dataclass
class SavedModel:
    """A loaded model directory: the fitted model, its training measurements and model.json (`info`)."""

    model: object
    kind: str
    training: list[Measurement]
    fidelity: str
    goal: dict | None
    info: dict
    derived: dict = field(default_factory=dict, repr=False, compare=False)  # computed once from it (serving.py)


# The model this process loaded (or saved with keep=True) last, [(its model.json text, SavedModel)]: loading the
# same model.json again (a campaign's model logged to MLflow, which loads it to check its input example) returns it,
# its files' sha256 checked, without parsing its training set or refitting it again.
_LAST: list[tuple[str, SavedModel]] = []


def _software() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("porelab", "torch", "torch-geometric", "scikit-learn", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _write_named(d: Path, stem: str, suffix: str, data: bytes) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    name = f"{stem}-{sha[:16]}{suffix}"
    atomic_write_bytes(d / name, data)
    return {"file": name, "sha256": sha}


def save_model(directory: str | Path, model, training: Sequence[Measurement], fidelity: str | None = None,
               goal: dict | None = None, provenance: dict | None = None, keep: bool = False) -> Path:
    """Write a fitted `model` trained on `training` (the measurements its samples came from) to `directory`
    (created); returns the path of model.json. `provenance` is merged into the recorded provenance. `keep`: this
    process keeps `model` as the one `load_model` returns for this model.json (a campaign's, whose MLflow logging
    loads it twice) instead of refitting it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    kind = model_kind(model)
    ms = [m for m in training if m.status == "ok"]
    # one pass of pydantic's serialiser (a campaign saves 10^4 of them per iteration); it writes NaN as null, but a
    # Measurement refuses NaN and inf when it is built (sim.measurement)
    doc = _TRAINING.dump_json(ms)
    fm = _fidelity_keywords(model)
    info = {"format": FORMAT, "kind": kind, "params": model.base_params() if fm else model.get_params(),
            "species": list(SPECIES_NAMES), "flux_scale_per_ns": model.transform.scale_per_ns,
            "featuriser": featuriser(model), "fidelity": fidelity or main_fidelity(ms), "goal": goal,
            "training": {**_write_named(d, "training", ".json", doc), "n_measurements": len(ms),
                         "n_designs": len({m.design_id for m in ms}), "design_ids": [m.design_id for m in ms]}}
    if fm:
        info["fidelity_model"] = fm
    if kind == "gnn":
        import torch  # torch only for a GNN's weights: descriptor models are saved without it

        tensors, state = (model.base_ if fm else model).get_state()
        buf = io.BytesIO()
        torch.save(tensors, buf)
        info["weights"] = _write_named(d, "weights", ".pt", buf.getvalue())
        info["state"] = state
    info["provenance"] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "software": _software(),
                          **(provenance or {})}
    path, text = d / MODEL_FILE, json.dumps(info, indent=1)
    atomic_write_text(path, text)  # a diverged loss in the history is written as NaN
    named = {info["training"]["file"], info.get("weights", {}).get("file")}
    for p in [*d.glob("training-*.json"), *d.glob("weights-*.pt")]:
        if p.name not in named:
            p.unlink(missing_ok=True)
    if keep:
        _LAST[:] = [(text, SavedModel(model, kind, ms, info["fidelity"], goal, json.loads(text)))]
    return path


def _read(d: Path, entry: dict, what: str) -> bytes:
    """The bytes of a file model.json names, checked against its sha256."""
    path = d / Path(entry["file"]).name
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{path}: its {what} do not match model.json (sha256 differs): the file was changed")
    return data


def load_model(directory: str | Path) -> SavedModel:
    """The model saved in `directory` (refitted for rf/gp, unless it is the one this process loaded or kept last:
    `_LAST`). ValueError (one line, naming the file) when the directory is not a model, was written by another
    version, or a file does not match model.json."""
    d = Path(directory)
    path = d / MODEL_FILE
    try:
        text = path.read_text()
        info = json.loads(text)
        kind = info["kind"]
    except FileNotFoundError:
        raise ValueError(f"{d}: not a model directory (no {MODEL_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as err:
        raise ValueError(f"{path}: not a model description ({type(err).__name__}: {err})") from None
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: model format {info.get('format')!r}, this porelab reads {FORMAT}; retrain it")
    if kind not in KINDS:
        raise ValueError(f"{path}: model kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
    if _LAST and _LAST[0][0] == text:  # the model this process saved or loaded last, its files checked
        for entry, what in ((info["training"], "training measurements"), (info.get("weights"), "weights")):
            if entry:
                _read(d, entry, what)
        return _LAST[0][1]
    fm = info.get("fidelity_model")
    try:
        model = new_model(kind, **info["params"])
        if fm:
            from porelab.surrogate.fidelity import FidelityModel  # sklearn, only for a multi-fidelity model

            model = FidelityModel(kind, params=info["params"], seed=info["params"].get("seed", 0), **fm).check()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: params: {err}") from None
    if info.get("species") != list(SPECIES_NAMES) or info.get("featuriser") != featuriser(model):
        raise ValueError(f"{path}: the model was trained with another species list or featuriser "
                         f"({info.get('featuriser')}, this porelab: {featuriser(model)}); retrain it")
    if kind == "gnn":  # the weights first: a file holding more than tensors is refused before anything else
        import torch  # torch only for a GNN's weights: descriptor models load without it

        data = d / Path(info["weights"]["file"]).name
        try:
            tensors = torch.load(data, weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(f"{data}: refused: it holds more than tensors (a pickled object; only weights are "
                             f"loaded, weights_only=True): {str(err).splitlines()[0]}") from None
        _read(d, info["weights"], "weights")
    try:
        training = _TRAINING.validate_json(_read(d, info["training"], "training measurements"))
    except ValidationError as err:
        raise ValueError(f"{d / info['training']['file']}: unreadable training measurements "
                         f"({type(err).__name__})") from None
    if fm:
        model.fit(training_samples(model, training), (tensors, info["state"]) if kind == "gnn" else None)
    elif kind == "gnn":
        model.set_state(tensors, info["state"])
    else:
        model.fit(training_samples(model, training))
    saved = SavedModel(model, kind, training, info.get("fidelity") or main_fidelity(training), info.get("goal"), info)
    _LAST[:] = [(text, saved)]
    return saved
