"""porelab floor 2: learning. Design -> pore graph, GNN deep ensemble with uncertainty, baselines, metrics.

graph.featurise_design / to_data (graphs), dataset.load_dataset / Samples (measurements -> samples),
ensemble.DeepEnsemble and baselines.GPBaseline / RFBaseline (fit / predict -> prediction.Prediction),
metrics.evaluate (accuracy and calibration), cli.app (`porelab train`). Imports sim/, never active_learning/.
"""
