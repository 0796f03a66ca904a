"""gRPC servers for the SnapEarth API (V1 rasters, V2 geobuf polygons)."""
