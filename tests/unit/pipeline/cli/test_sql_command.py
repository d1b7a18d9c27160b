"""`vitals sql` with a query that names its own format and a --format that disagrees: one line on
stderr and exit 2, before anything is asked of a store."""

from pipeline.cli.main import main


def test_two_different_formats_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITALS_DATA_DIR", str(tmp_path))  # no `vitals up` runs there
    assert main(["sql", "SELECT 1 FORMAT CSV", "--format", "TSV"]) == 2
    err = capsys.readouterr().err
    assert "the query ends with FORMAT CSV and --format says TSV: give one of them" in err
    assert len(err.strip().splitlines()) == 1


def test_the_same_format_twice_is_fine_and_reaches_the_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITALS_DATA_DIR", str(tmp_path))
    assert main(["sql", "SELECT 1 format csv", "--format", "CSV"]) == 1  # nothing runs there
    assert "`vitals up` is not running on" in capsys.readouterr().err


def test_in_embedded_mode_the_query_goes_to_the_route_as_written(tmp_path, monkeypatch, capsys):
    """The running `vitals up`'s /sql reads a query's own FORMAT clause, in any case: the
    command forwards the query untouched and names no format of its own beside it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    bodies: list[dict[str, str]] = []

    class Sql(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Sql)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "api.url").write_text(f"http://127.0.0.1:{server.server_port}\n")
        (tmp_path / "admin.key").write_text("vk_test\n")
        monkeypatch.setenv("VITALS_DATA_DIR", str(tmp_path))
        assert main(["sql", "SELECT 1 format vertical"]) == 0
        assert main(["sql", "SELECT 1 FORMAT CSV", "--format", "CSV"]) == 0
        assert main(["sql", "SELECT 1", "--format", "JSON"]) == 0
    finally:
        server.shutdown()
    assert bodies == [{"query": "SELECT 1 format vertical"},
                      {"query": "SELECT 1 FORMAT CSV", "format": "CSV"},
                      {"query": "SELECT 1", "format": "JSON"}]
    assert capsys.readouterr().out == "ok\nok\nok\n"
