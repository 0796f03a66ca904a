"""Protocol Buffers sources of the SnapEarth API and their generated Python code."""
