"""Inverse design: search a design space with a trained surrogate, rank risk-aware, verify with the oracle."""
