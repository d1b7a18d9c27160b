"""Endpoint and autogroup stats, Vast.ai shapes: `/get_endpoint_stats/`, `/get_autogroup_stats/`."""
