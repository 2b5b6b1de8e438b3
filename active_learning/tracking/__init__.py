"""MLflow as a view of the campaign ledger, and the surrogate as an MLflow model."""
