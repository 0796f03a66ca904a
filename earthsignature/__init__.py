"""EarthSignature: Sentinel-2 L2A products to CORINE land-cover maps, stored and served.

Design and contracts: docs/DESIGN.md in the repository.
"""

__version__ = "0.1.0"
