"""The REST API (FastAPI) over the chain (writes) and the index (reads); see api.main."""
