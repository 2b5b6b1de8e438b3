"""MLflow as a view of a campaign ledger (view.py), with the bookkeeping of what it logged (bookkeeping.py)."""
