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
# An unprivileged user that owns the data dir (faust's state, admin.key, the embedded engine
# when CLICKHOUSE_DSN is left unset); mount a volume there to keep it.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/vitals --create-home vitals
ENV VITALS_DATA_DIR=/var/lib/vitals
VOLUME ["/var/lib/vitals"]
USER vitals
ENTRYPOINT ["vitals"]
