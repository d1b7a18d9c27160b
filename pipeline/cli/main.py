"""The `vitals` command: run the pipeline, manage the local broker, keys, SQL, test traffic.

`main` reads the environment once (`Settings.from_env`) and hands the settings to one
subcommand. Expected failures (bad settings, Kafka, storage, bad input) end as one line on
stderr and exit code 2 (1 for a failed SQL query, a missing `vitals up`, or rejected events);
a clean stop after Ctrl-C/SIGTERM exits 0.

Files in the data dir written here: `admin.key` (mode 0600, the superadmin bootstrap key of
tenant "default", created by the first `vitals up` and reused while it verifies) and `api.url`
(the URL of the running `vitals up`, removed when it stops). Commands that need the embedded
store while `vitals up` holds it (`keys`, `sql`) go through that process's HTTP admin routes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from pipeline.cli import status as cli_status
from pipeline.cli.admin import _cmd_kafka, _cmd_keys, _cmd_migrate, _cmd_sql
from pipeline.cli.errors import CliError, _err, _first_line
from pipeline.cli.local_state import ensure_admin_key, read_text_file, write_file_atomic
from pipeline.cli.serve import _cmd_part, _cmd_statsd, _cmd_up
from pipeline.cli.traffic import _cmd_demo, _cmd_publish, format_progress, parse_event_line
from pipeline.core.errors import StorageError, StoreLocked
from pipeline.core.log_limit import RateLimitFilter
from pipeline.core.settings import Settings, SettingsError
from pipeline.ingest.decode import EVENT_TYPES
from pipeline.local.kafka_config import KafkaRuntimeError
from pipeline.storage.keys import ROLES, KeyError_

__all__ = [
    "CliError",
    "build_parser",
    "ensure_admin_key",
    "format_progress",
    "main",
    "parse_event_line",
    "read_text_file",
    "write_file_atomic",
]

Handler = Callable[[Settings, argparse.Namespace], int]


# --------------------------------------------------------------------------- arguments


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vitals",
        description="Vitals: Kafka -> faust-streaming -> ClickHouse -> query API. Configured by "
        "environment variables (KAFKA_BOOTSTRAP, CLICKHOUSE_DSN, VITALS_DATA_DIR, ...).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run broker (if needed), worker and API in one process")
    up.add_argument("--demo", action="store_true", help="also send synthetic traffic")
    up.add_argument(
        "--rate", type=_positive(float), default=20.0, help="demo requests per second (default 20)"
    )
    up.set_defaults(handler=_cmd_up)
    sub.add_parser(
        "worker", help="run only the stream worker (ClickHouse server DSN)"
    ).set_defaults(handler=lambda s, a: _cmd_part(s, worker=True))
    sub.add_parser("api", help="run only the query API (ClickHouse server DSN)").set_defaults(
        handler=lambda s, a: _cmd_part(s, worker=False)
    )
    sub.add_parser(
        "statsd", help="run only the DogStatsD UDP listener (to Kafka; VITALS_STATSD_PORT)"
    ).set_defaults(handler=_cmd_statsd)
    sub.add_parser("migrate", help="apply the ClickHouse migrations").set_defaults(
        handler=_cmd_migrate
    )

    sub.add_parser(
        "status", help="broker, API, key file, consumer lag and readiness of `vitals up`"
    ).set_defaults(handler=lambda s, a: cli_status.run(s))

    kafka = sub.add_parser("kafka", help="manage the local Kafka broker in the data dir")
    kafka.add_argument("action", choices=("start", "stop", "status"))
    kafka.set_defaults(handler=_cmd_kafka)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = ksub.add_parser("create", help="create a key (shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="", help="a note to recognise the key by")
    ksub.add_parser("list", help="list keys").add_argument("--tenant")
    ksub.add_parser("revoke", help="revoke a key").add_argument("key_id")
    keys.set_defaults(handler=_cmd_keys)

    sql = sub.add_parser("sql", help="run read-only SQL")
    sql.add_argument("query")
    sql.add_argument(
        "--format",
        help="a ClickHouse output format such as TSV, TSVWithNames, "
        "JSONEachRow, Pretty (default: PrettyCompact on a terminal, else TSV)",
    )
    sql.set_defaults(handler=_cmd_sql)

    pub = sub.add_parser("publish", help="publish JSON-lines events (exit 1 if any is rejected)")
    pub.add_argument("file", nargs="?", default="-", help="file of JSON lines, - for stdin")
    pub.add_argument("--topic", required=True, choices=tuple(EVENT_TYPES))
    pub.set_defaults(handler=_cmd_publish)

    demo = sub.add_parser("demo", help="send synthetic traffic")
    demo.add_argument(
        "--rate",
        type=_positive(float),
        default=20.0,
        help="requests per second, heartbeats come on top (default 20)",
    )
    demo.add_argument("--duration", type=_positive(float), help="seconds (default: until Ctrl-C)")
    demo.add_argument("--endpoints", type=_positive(int), default=3, help="default 3")
    demo.add_argument("--seed", type=int, help="seed for reproducible traffic")
    demo.set_defaults(handler=_cmd_demo)
    return p


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    RateLimitFilter.install(logging.getLogger().handlers)  # Kafka clients: once a minute
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_quiet_coordinator_start)
    from aiokafka.errors import KafkaError

    from pipeline.sdk.producer_errors import ProducerError

    try:
        settings = Settings.from_env()
        handler: Handler = args.handler
        return handler(settings, args)
    except CliError as exc:
        _err(str(exc))
        return exc.code
    except StoreLocked as exc:
        _err(f"{_first_line(exc)} (is `vitals up` running on this data dir?)")
        return 2
    except KafkaRuntimeError as exc:
        _err(str(exc) if exc.log_path is None else _first_line(exc))
        return 2
    except KafkaError as exc:
        _err(f"Kafka: {exc!r}")
        return 2
    except ProducerError as exc:  # the SDK's errors say what to do
        _err(_first_line(exc))
        return 2
    except (SettingsError, StorageError, KeyError_) as exc:
        _err(_first_line(exc))
        return 2
    except KeyboardInterrupt:
        return 130


def _quiet_coordinator_start(record: logging.LogRecord) -> bool:
    """Drop aiokafka's ERROR for a group coordinator that is still being elected: on a broker
    that just started it is expected, retried by aiokafka, and alarms users for nothing."""
    return "GroupCoordinatorNotAvailableError" not in record.getMessage()


if __name__ == "__main__":
    raise SystemExit(main())
