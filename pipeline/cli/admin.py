"""The one-shot administration commands: `vitals migrate`, `kafka`, `keys`, `sql`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pipeline.cli.errors import CliError, _first_line
from pipeline.cli.local_state import _local_kafka, _open_store
from pipeline.cli.remote import _Remote
from pipeline.core.errors import StorageError, StoreLocked
from pipeline.core.settings import Settings
from pipeline.storage.keys import ApiKey
from pipeline.storage.sql_format import trailing_format


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.storage.clickhouse import migrate

    store = _open_store(settings)
    applied = migrate(store, retention=settings.retention, progress=print)
    where = "embedded" if settings.embedded else settings.dsn
    print(f"{len(applied)} migrations applied to database {settings.clickhouse_database} ({where})")
    return 0


def _cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    kafka = _local_kafka(settings)
    if args.action == "stop":
        stopped = kafka.stop()
        print(
            f"{'stopped the' if stopped else 'no'} local Kafka broker in {kafka.home}"
            f"{'' if stopped else ' was running'}"
        )
        return 0
    if args.action == "start":
        if kafka.status() is None:
            print(
                f"starting a local Kafka broker in {kafka.home} (the first start resolves "
                f"its jars with Maven and can take a minute)",
                flush=True,
            )
        info = kafka.start()
        kafka.release()  # runs until `vitals kafka stop`, whoever started it
    else:
        found = kafka.status()
        if found is None:
            print(f"no local Kafka broker running in {kafka.home}")
            return 1
        info = found
        orphaned_by = kafka.orphaned_by()
        if orphaned_by is not None:
            print(f"Kafka running: bootstrap {info.bootstrap} (pid {info.pid}; log "
                  f"{info.log_file}); left over from a `vitals up` (pid {orphaned_by}) that "
                  f"ended without stopping it: the next `vitals up` adopts it, "
                  f"`vitals kafka stop` stops it")
            return 0
    print(f"Kafka running: bootstrap {info.bootstrap} (pid {info.pid}; log {info.log_file})")
    return 0


def _print_new_key(key: str, key_id: str, role: str, tenant: str) -> None:
    print(f"created {role} key {key_id} for tenant {tenant!r}:", file=sys.stderr)
    print(key)
    print("This is the only time the key is shown: Vitals stores only its hash.", file=sys.stderr)


def _print_keys(rows: list[dict[str, Any]]) -> None:
    cols = ("key_id", "tenant", "role", "revoked", "created_at", "name")
    table = [
        cols,
        *[tuple(str(r[c]).lower() if c == "revoked" else str(r[c]) for c in cols) for r in rows],
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _key_row(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "tenant": k.tenant,
        "role": k.role,
        "name": k.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(k.created_at)),
        "revoked": k.revoked,
    }


def _cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.storage import keys
    try:
        store = _open_store(settings)
    except StoreLocked:
        return _keys_remote(settings, args)
    if not store.rows(f"EXISTS TABLE {settings.clickhouse_database}.api_keys")[0][0]:
        raise CliError(
            f"no Vitals tables in database {settings.clickhouse_database}: run "
            f"`vitals migrate` (or `vitals up`) first",
            2,
        )
    if args.keys_command == "create":
        new = keys.create_key(store, args.tenant, args.role, args.name)
        _print_new_key(new.key, new.info.key_id, new.info.role, new.info.tenant)
    elif args.keys_command == "list":
        _print_keys([_key_row(k) for k in keys.list_keys(store, args.tenant)])
    else:
        info = keys.revoke_key(store, args.key_id)
        print(f"revoked {info.role} key {info.key_id} of tenant {info.tenant!r}")
    return 0


def _keys_remote(settings: Settings, args: argparse.Namespace) -> int:
    remote = _Remote(settings)
    print(
        f"(the embedded store is held by `vitals up`; using its admin API at {remote.url})",
        file=sys.stderr,
    )
    if args.keys_command == "create":
        doc = remote.call(
            "POST", "/admin/keys", {"tenant": args.tenant, "role": args.role, "name": args.name}
        ).json()
        _print_new_key(doc["key"], doc["key_id"], doc["role"], doc["tenant"])
    elif args.keys_command == "list":
        rows = remote.call("GET", "/admin/keys").json()["keys"]
        _print_keys([r for r in rows if args.tenant is None or r["tenant"] == args.tenant])
    else:
        doc = remote.call("DELETE", f"/admin/keys/{args.key_id}").json()
        print(f"revoked {doc['role']} key {doc['key_id']} of tenant {doc['tenant']!r}")
    return 0


def _cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    query, named = trailing_format(args.query)  # `… FORMAT Vertical`: that format
    if named is not None and args.format is not None and named.lower() != args.format.lower():
        raise CliError(f"the query ends with FORMAT {named} and --format says {args.format}: "
                       f"give one of them", 2)
    fmt = args.format or named or ("PrettyCompact" if sys.stdout.isatty() else "TSV")
    if settings.embedded:  # the route reads the query's own FORMAT clause (in any case) itself
        body = {"query": args.query}
        if named is None or args.format is not None:
            body["format"] = fmt
        data: bytes = _Remote(settings).call("POST", "/sql", body).content
    else:
        from pipeline.core.errors import StorageUnavailable

        store = _open_store(settings)
        try:
            data = store.readonly_raw(query, fmt)
        except StorageUnavailable:
            raise
        except StorageError as exc:
            raise CliError(f"SQL error: {_first_line(exc)}") from None
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0
