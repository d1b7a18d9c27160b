"""Where the dashboard's files live and how they are served: pure path and type rules.

`resolve` only answers files inside `STATIC_DIR`, so `/ui/assets/../../x` cannot leave it.
Vendored builds carry their versions in their paths' manifest (`VENDORED`), which is what the
docs pages and `static/vendor/VENDORED.md` name.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

__all__ = ["MEDIA_TYPES", "STATIC_DIR", "VENDORED", "media_type", "resolve"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: npm package → (version, license): the builds copied into static/vendor/ (with their
#: license files), recorded here and in static/vendor/VENDORED.md.
VENDORED: dict[str, tuple[str, str]] = {
    "uplot": ("1.6.32", "MIT"),
    "plotly.js-cartesian-dist-min": ("4.1.1", "MIT"),
    "swagger-ui-dist": ("5.35.0", "Apache-2.0"),
    "redoc": ("2.5.4", "MIT"),
}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def resolve(relative: str, root: Path = STATIC_DIR) -> Path | None:
    """The file `relative` names under `root`, or None when it is not a file there (absent,
    a folder, or a path that climbs out with `..` or starts at `/`)."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or not rel.parts:
        return None
    if not all(p.isprintable() and "\\" not in p for p in rel.parts):
        return None
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path
