"""Ensembles of trained models: originals on the full train set, oracles retrained on the retain set."""
