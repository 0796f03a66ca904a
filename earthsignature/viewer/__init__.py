"""``earthsig viewer``: a local web map of committed products and their statistics.

The page and its front-end libraries (MapLibre GL JS, pmtiles) ship in ``static/``, so it
works with no internet; everything else is read from the same store and catalog as the API.
"""

from earthsignature.viewer.server import ViewerServer

__all__ = ["ViewerServer"]
