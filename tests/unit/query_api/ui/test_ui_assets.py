"""The dashboard's asset rules: only files inside the package's static folder are served, with
their types; every vendored build ships its license."""

from __future__ import annotations

from pathlib import Path

import pytest

from query_api.ui import assets


def test_resolve_serves_files_of_the_static_folder_only() -> None:
    assert assets.resolve("index.html") == assets.STATIC_DIR / "index.html"
    assert assets.resolve("vendor/uplot/uPlot.iife.min.js") is not None
    for bad in ("", ".", "..", "../routes.py", "vendor/../../routes.py", "/etc/passwd",
                "vendor", "nope.js", "vendor\\..\\x", "a\x00b"):
        assert assets.resolve(bad) is None, bad


def test_resolve_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "ok.txt").write_text("y")
    assert assets.resolve("link.txt", root) is None
    assert assets.resolve("ok.txt", root) == (root / "ok.txt").resolve()


@pytest.mark.parametrize(("name", "media"), [
    ("a.js", "text/javascript; charset=utf-8"), ("a.css", "text/css; charset=utf-8"),
    ("a.html", "text/html; charset=utf-8"), ("a.png", "image/png"),
    ("a.bin", "application/octet-stream")])
def test_media_types(name: str, media: str) -> None:
    assert assets.media_type(Path(name)) == media


def test_every_vendored_build_has_its_license_and_recorded_version() -> None:
    vendor = assets.STATIC_DIR / "vendor"
    folders = {"uplot": "uplot", "plotly.js-cartesian-dist-min": "plotly",
               "swagger-ui-dist": "swagger-ui", "redoc": "redoc"}
    assert set(folders) == set(assets.VENDORED)
    record = (vendor / "VENDORED.md").read_text()
    for package, folder in folders.items():
        assert (vendor / folder / "LICENSE").is_file(), folder
        version, license_ = assets.VENDORED[package]
        assert f"| {package} | {version} | {license_} |" in record, package


def test_pages_load_nothing_from_another_host() -> None:
    """The app shell and its scripts name no absolute URL to load (the browser tests check
    the running pages; this catches a CDN link before they run)."""
    for path in assets.STATIC_DIR.glob("*.*"):
        text = path.read_text()
        for needle in ('src="http', "src='http", 'href="http', "href='http", "url(http",
                       "//cdn", "googleapis"):
            assert needle not in text, (path.name, needle)
