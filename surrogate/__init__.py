"""porelab floor 2: learning. Design -> pore graph or descriptors; surrogates of per-species fluxes with
uncertainty; the observables derived from them; one model directory; metrics; `porelab train`.

Every model has one interface, fit(Samples) -> self and predict(Samples) -> prediction.Prediction (fluxes):
ensemble.DeepEnsemble (GNN, graph.featurise_design), baselines.RFBaseline and GPBaseline (descriptors.py);
factory.new_model(kind) makes one by kind (gnn, rf, gp). dataset.load_dataset / Samples turn measurements into
samples; derived.derive gives ln ICR, ln ON current and ln selectivity (through porelab.sim.observables);
store.save_model / load_model write and read the model directory; serving.log_model logs it as the MLflow model
(pyfunc.py, from code); metrics.evaluate scores it; cli.app is `porelab train`. Imports sim/, never active_learning/.
"""
