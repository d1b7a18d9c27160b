# The Vitals image: one image, three roles (`vitals worker`, `vitals api`, `vitals migrate`).
# Used by docker-compose.yml; the embedded engine (chdb) ships with the package but the compose
# deployment points CLICKHOUSE_DSN at a ClickHouse server.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY pipeline ./pipeline
COPY query_api ./query_api
COPY schemas ./schemas
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["vitals"]
