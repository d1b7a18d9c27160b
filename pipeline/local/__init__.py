"""Development and test helpers: the local Kafka broker (1 or 3 nodes) and demo traffic."""
