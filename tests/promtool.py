"""Prometheus text checked with the real `promtool check metrics` (Debian package `prometheus`;
`.ci/run` installs it when missing). prometheus_client's parser accepts text that Prometheus
rejects (a second HELP line for a family, samples of a family split apart, a `quantile` label on
a gauge), so compatibility is judged by promtool alone: exit 0 means it parsed the text and
found no lint problem."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["check_metrics"]


def check_metrics(text: str) -> None:
    """Fail unless `promtool check metrics` accepts `text` with no error and no lint problem."""
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: apt-get install -y prometheus (see .ci/run)"
    done = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=60, check=False)
    report = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, f"promtool check metrics exit {done.returncode}:\n{report}" \
                                 f"\n--- text ---\n{text[:4000]}"
