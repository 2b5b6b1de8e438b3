"""A campaign: study, design space, ledger, oracles, executors, the surrogate adapter, acquisition, the loop."""
