"""Reproductions that span tasks: paper 003's convergence (linear Gaussian) and Pareto fronts (any task)."""
from bench.catalog import register_reproduction

register_reproduction("linear-convergence", "tasks.reproductions.linear_convergence")
register_reproduction("dm-pareto", "tasks.reproductions.dm_pareto")
