"""The one model directory (surrogate.store): round trips for every kind, any flux scale, no pickle, integrity."""

import json

import numpy as np
import pytest

from porelab.surrogate import store
from porelab.surrogate.dataset import Samples
from porelab.surrogate.factory import new_model
from porelab.surrogate.store import load_model, save_model
from porelab.surrogate.training_set import training_samples

KW = {"rf": {"n_estimators": 20}, "gp": {"max_train": 100, "max_iter": 10},
      "gnn": {"n_members": 2, "hidden": 8, "msg_dim": 4, "head_hidden": 8, "n_conv": 1, "max_epochs": 2,
              "progress": False}}


@pytest.fixture(scope="module")
def split(measurements):
    return measurements[:16], measurements[16:]


def _queries(model, ms):
    return Samples.from_queries([m.design for m in ms], [m.conditions for m in ms], "continuum", model.settings,
                                model.transform)


@pytest.mark.parametrize("kind", ["rf", "gp", "gnn"])
@pytest.mark.parametrize("scale", [0.01, 0.3])
def test_round_trip_at_any_flux_scale(tmp_path, split, kind, scale):
    train, test = split
    model = new_model(kind, **KW[kind], flux_scale_per_ns=scale, seed=2)
    model.fit(training_samples(model, train))
    before = model.predict(_queries(model, test))
    assert before.transform.scale_per_ns == scale
    save_model(tmp_path / "m", model, train, goal={"objective": "icr"}, provenance={"created_by": "test"})
    files = sorted(p.stem.split("-")[0] + p.suffix for p in (tmp_path / "m").iterdir())
    assert files == ["model.json", "training.json"] + (["weights.pt"] if kind == "gnn" else [])  # no pickle
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["kind"] == kind and info["flux_scale_per_ns"] == scale and info["params"]["seed"] == 2
    assert info["training"]["design_ids"] == [m.design_id for m in train] and info["goal"] == {"objective": "icr"}
    assert info["provenance"]["created_by"] == "test" and info["provenance"]["software"]["scikit-learn"]
    saved = load_model(tmp_path / "m")
    assert saved.kind == kind and saved.fidelity == "continuum" and len(saved.training) == len(train)
    after = saved.model.predict(_queries(saved.model, test))
    np.testing.assert_array_equal(after.mean, before.mean)  # rf/gp refitted: the same model
    np.testing.assert_array_equal(after.std, before.std)


def test_integrity_and_format_errors_name_the_file(tmp_path, split):
    train, _ = split
    model = new_model("rf", **KW["rf"])
    model.fit(training_samples(model, train))
    d = tmp_path / "m"
    save_model(d, model, train)
    (data,) = d.glob("training-*.json")
    data.write_text(data.read_text().replace('"continuum"', '"md"', 1))
    with pytest.raises(ValueError, match=r"training-.*sha256 differs"):
        load_model(d)
    with pytest.raises(ValueError, match="not a model directory"):
        load_model(tmp_path)
    info = json.loads((d / "model.json").read_text())
    for change, words in (({"format": 0}, "model format 0"), ({"kind": "svm"}, "kind 'svm' is unknown"),
                          ({"featuriser": "descriptors-v0"}, "another species list or featuriser"),
                          ({"params": {"n_trees": 3}}, "params: n_trees is not a keyword")):
        (d / "model.json").write_text(json.dumps(info | change))
        with pytest.raises(ValueError, match=words):
            load_model(d)


def test_an_interrupted_save_keeps_the_previous_model(tmp_path, split, monkeypatch):
    train, _ = split
    model = new_model("rf", **KW["rf"])
    model.fit(training_samples(model, train[:8]))
    save_model(tmp_path / "m", model, train[:8])
    model.fit(training_samples(model, train))

    def refuse(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(store, "atomic_write_text", refuse)  # model.json cannot be written
    with pytest.raises(OSError):
        save_model(tmp_path / "m", model, train)
    assert len(load_model(tmp_path / "m").training) == 8  # the previous model, whole
    monkeypatch.undo()
    save_model(tmp_path / "m", model, train)
    assert len(load_model(tmp_path / "m").training) == len(train)
    assert len(list((tmp_path / "m").glob("training-*.json"))) == 1  # files no model.json names are removed


def test_a_kept_model_loads_from_memory_its_files_checked(tmp_path, split):
    """save_model(keep=True) (a campaign's model, which MLflow's logging loads twice) is what the next load of that
    model.json returns, from its own directory or a copy, without refitting; a changed file is still refused."""
    import shutil

    train, _ = split
    model = new_model("rf", **KW["rf"])
    model.fit(training_samples(model, train))
    save_model(tmp_path / "kept", model, train, keep=True)
    shutil.copytree(tmp_path / "kept", tmp_path / "copy")
    assert load_model(tmp_path / "kept").model is model and load_model(tmp_path / "copy").model is model
    save_model(tmp_path / "other", model, train[:8])  # not kept: loaded by refitting, a model of its own
    assert load_model(tmp_path / "other").model is not model
    save_model(tmp_path / "kept", model, train, keep=True)
    (data,) = (tmp_path / "kept").glob("training-*.json")
    data.write_text(data.read_text().replace('"continuum"', '"md"', 1))
    with pytest.raises(ValueError, match=r"training-.*sha256 differs"):
        load_model(tmp_path / "kept")
