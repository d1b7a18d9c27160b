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
