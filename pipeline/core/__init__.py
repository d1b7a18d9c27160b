"""What every part shares: the settings object, the exception tree, telemetry, health, logging
limits, fault injection."""
