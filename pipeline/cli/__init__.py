"""The `vitals` command (`main`), the in-process runtime that runs its parts, readiness and
signals."""
