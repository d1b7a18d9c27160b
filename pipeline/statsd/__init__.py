"""DogStatsD: the line parser and the UDP listener that publishes to the `metrics` topic."""
