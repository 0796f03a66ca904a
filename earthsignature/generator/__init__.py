"""Synthetic Sentinel-2 L2A products with known CORINE truth, for the demo, tests and benchmarks.

``generate_product`` writes bands at native 10/20/60 m resolutions on a real tile's grid, SCL
with clouds and shadows, a uint16 CORINE truth raster and an Earth Search v1 STAC item,
streaming window by window so a full 10980 x 10980 tile needs little memory. With
``seasonal=True`` the pixels come from real labelled spectra and texture windows
(:mod:`.library`, sampled from BigEarthNet) and the fixed truth is shown as the date would
show it (:mod:`.seasons`).
"""

from earthsignature.generator.product import GeneratedProduct, generate_product

__all__ = ["GeneratedProduct", "generate_product"]
