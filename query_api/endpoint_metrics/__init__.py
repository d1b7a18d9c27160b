"""Endpoint metrics, TensorOne shapes: `/v2/endpoints/{id}/metrics` (json, csv, prometheus), batch,
pricing."""
