"""Custom (DogStatsD) metrics reads: `/v2/metrics/custom/timeseries` and `/series`."""
