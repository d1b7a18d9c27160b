"""Job queues and node usage, Coopr shapes: `/v2/metrics/queues`, `/v2/metrics/nodes/usage`."""
