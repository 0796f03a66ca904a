"""Land-cover polygons as files and bytes: tables, geobuf encoding, the pre-encoded side file.

Below both the pipeline (publish writes the side file) and the API (V2 reads it).
"""
