"""The jars of the local broker: resolved once by Maven from the pom in `kafka_runtime/` into a
shared cache, and the Java check before any start."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.local.kafka_config import JAVA_MIN, KAFKA_VERSION, KafkaRuntimeError, java_major

__all__ = ["check_java", "resolve_jars"]


_RUNTIME_DIR = Path(__file__).parent / "kafka_runtime"


_POM = _RUNTIME_DIR / "pom.xml"


_MARKER = ".complete"


def check_java() -> None:
    """Raise KafkaRuntimeError (one line) unless `java` on PATH is Java 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise KafkaRuntimeError(
            f"`java` not found on PATH: the local Kafka broker needs Java {JAVA_MIN}+ "
            f"(or set KAFKA_BOOTSTRAP to use another broker)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                             check=False)
        text = out.stderr + out.stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaRuntimeError(f"`{java} -version` failed: {exc}") from None
    major = java_major(text)
    if major is None or major < JAVA_MIN:
        first = (text.strip().splitlines() or ["no version"])[0]
        raise KafkaRuntimeError(
            f"{java} is Java {major if major is not None else '?'} ({first}); the local Kafka "
            f"broker needs Java {JAVA_MIN}+ (or set KAFKA_BOOTSTRAP to use another broker)")


def resolve_jars(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Return a directory holding the broker's runtime jars (``java -cp 'DIR/*'``).

    The first call copies them with Maven (the pom packaged beside this module) into
    ``cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"``: built in a temp dir, then renamed into place;
    a marker file holding the pom's sha256 means complete, so later calls are instant and a changed
    pom triggers one re-resolution. Safe against concurrent callers (the loser of the rename keeps
    the winner's copy). Raises KafkaRuntimeError if java or mvn are missing or mvn fails.
    """
    lib = cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"
    digest = hashlib.sha256(_POM.read_bytes()).hexdigest()

    def complete(path: Path) -> bool:
        with contextlib.suppress(OSError):
            return (path / _MARKER).read_text().strip() == digest
        return False

    if complete(lib):
        return lib
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaRuntimeError(
                f"`{tool}` not found on PATH: the local Kafka broker needs Java 17+ and Maven"
            )
    lib.parent.mkdir(parents=True, exist_ok=True)
    progress(f"resolving Kafka {KAFKA_VERSION} jars with Maven into {lib} (once per machine)")
    work = Path(tempfile.mkdtemp(prefix=".lib-", dir=lib.parent))
    try:
        shutil.copyfile(_POM, work / "pom.xml")
        cmd = [
            "mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={work / 'lib'}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaRuntimeError(f"mvn did not finish in 900 s: {' '.join(cmd)}") from exc
        if done.returncode != 0 or not list((work / "lib").glob("kafka_2.13-*.jar")):
            out = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise KafkaRuntimeError(
                f"mvn failed (exit {done.returncode}) resolving Kafka jars from {_POM}:\n{out}"
            )
        (work / "lib" / _MARKER).write_text(digest + "\n")
        if lib.exists() and not complete(lib):  # stale copy from an older pom
            shutil.rmtree(lib, ignore_errors=True)
        try:
            (work / "lib").rename(lib)
        except OSError:
            if not complete(lib):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lib
