"""Book infrastructure: what the chapters need around the science, and no model of any kind.

Belongs here: execution profiles and seeding (``profiles``), verification records printed by assert cells
(``checks``), the scoreboard report built from them (``scoreboard``), the seaborn theme and standard figures (``plotting``), grids of configurations with an on-disk
cache (``sweep``), the run log a headless run's kernel files for its runner (``runlog``: device, sweep cache hits and
misses), and the paper-profile budget model (``budget``: measured per-step costs scaled by FLOPs). Imports nothing
else from ``lmcnb``: the bottom layer.
"""
