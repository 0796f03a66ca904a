"""Stage handlers (discover, fetch, cloud, split, infer, vectorize, which publishes) and the
pure array/raster code they call. Handlers take ``(ProductMessage, Runtime)`` and return the
messages for the next stage; they know nothing about RQ."""
