"""Land use from the time series: per tile and period, composites of every committed date.

:mod:`rules` (label history -> land-use code), :mod:`periods` (month, season, year),
:mod:`fold` (the incremental per-pixel state, window by window), :mod:`stage` (the pipeline
stage after vectorize, one writer per tile-period, STAC item, rebuild).
"""
