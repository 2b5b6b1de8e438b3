"""A campaign: study, design space, ledger, oracles, executors, the surrogate adapter, acquisition, one iteration
(a pure function of the ledger), ingestion of results, the loop (driver.py), its directory, models and summary."""
