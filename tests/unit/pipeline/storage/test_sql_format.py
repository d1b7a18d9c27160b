from pipeline.storage.sql_format import trailing_format


def test_a_trailing_format_clause_is_split_off():
    assert trailing_format("SELECT 1 FORMAT Vertical") == ("SELECT 1", "Vertical")
    assert trailing_format("SELECT 1\nformat JSONEachRow ;\n") == ("SELECT 1", "JSONEachRow")
    assert trailing_format("SELECT a FROM t WHERE b = 1  FORMAT\tCSV") == (
        "SELECT a FROM t WHERE b = 1", "CSV")


def test_a_query_without_one_is_left_alone():
    for q in ("SELECT 1", "SELECT 'x FORMAT TSV'", "SELECT format FROM t",
              "SELECT date_format FROM t", "SELECT 1 FORMAT", "SELECT formatRow('TSV', 1)"):
        assert trailing_format(q) == (q, None)
