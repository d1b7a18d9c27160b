"""ClickHouse rows of decoded events, one module per topic kind. Pure."""
