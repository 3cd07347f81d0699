"""``ledger-admin``: manage the API's keys.

    ledger-admin keys create --role merchant --name "Acme returns desk" --actor 0x3C44...
    ledger-admin keys list [--json]
    ledger-admin keys revoke 3

``create`` prints the new key alone on stdout (it is stored hashed and shown
only this once) and what it made on stderr, so ``KEY=$(ledger-admin keys
create ...)`` works. The database is ``LEDGER_DATABASE_URL`` (or
``--database-url``). Every failure is one line on stderr and a non-zero exit
code: 1 for a refused request or bad configuration, 3 when the database is
unavailable, 2 for a command-line mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ledger_service.access._model import Role
from ledger_service.access.keys import ApiKey, create_api_key, list_api_keys, revoke_api_key
from ledger_service.errors import ConfigurationError, LedgerError, RetryableError
from ledger_service.logs import configure_logging
from ledger_service.settings import Settings
from ledger_service.store.handle import Store

PROG = "ledger-admin"
EXIT_ERROR, EXIT_UNAVAILABLE = 1, 3


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "actor_address": key.actor_address,
        "key_prefix": key.key_prefix,
        "created_at": _when(key.created_at),
        "revoked_at": None if key.revoked_at is None else _when(key.revoked_at),
    }


def _describe(key: ApiKey) -> str:
    account = f", account {key.actor_address}" if key.actor_address else ""
    return f"key {key.id} ({key.role.value} {key.name!r}{account})"


def cmd_create(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    created = create_api_key(store=store, role=args.role, name=args.name, actor_address=args.actor)
    print(created.plaintext)
    print(f"{PROG}: created {_describe(created.key)}; store the key now, it is shown only once", file=sys.stderr)
    address = created.key.actor_address
    if address is not None and address not in {a.lower() for a in settings.signer_keys}:
        print(
            f"{PROG}: note: LEDGER_SIGNER_KEYS has no key for {address}; this key's writes will fail until the "
            "service is given that account's key",
            file=sys.stderr,
        )
    return 0


def cmd_list(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    keys = list_api_keys(store=store)
    if args.json:
        print(json.dumps([_as_json(k) for k in keys], indent=2))
        return 0
    if not keys:
        print("no API keys yet (create one with `ledger-admin keys create`)")
        return 0
    header = ("ID", "ROLE", "NAME", "ACCOUNT", "KEY", "CREATED", "REVOKED")
    rows = [
        (
            str(k.id),
            k.role.value,
            k.name,
            k.actor_address or "-",
            k.key_prefix + "...",
            _when(k.created_at),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_revoke(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    before = {k.id: k for k in list_api_keys(store=store)}.get(args.id)
    key = revoke_api_key(store=store, key_id=args.id)
    if before is not None and before.revoked:
        print(f"{PROG}: {_describe(key)} was already revoked at {_when(key.revoked_at)}", file=sys.stderr)
    else:
        print(
            f"{PROG}: revoked {_describe(key)}; new API processes refuse it at once, running API workers within "
            f"{settings.revocation_poll_s:g} s (LEDGER_REVOCATION_POLL_S: how often each worker looks for revocations)",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Administer the returns ledger API.")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the database (default: LEDGER_DATABASE_URL)")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    keys = groups.add_parser("keys", help="API keys of merchants, carriers, inspectors, arbiters, auditors, admins")
    commands = keys.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role], help="what the key may do")
    create.add_argument("--name", required=True, help="who holds the key, e.g. 'Acme returns desk'")
    create.add_argument("--actor", help="on-chain account the key acts for (required for writing roles)")
    create.set_defaults(run=cmd_create)
    listing = commands.add_parser("list", help="list every key (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=cmd_list)
    revoke = commands.add_parser(
        "revoke", help="revoke a key (running API workers refuse it within LEDGER_REVOCATION_POLL_S, default 1 s)"
    )
    revoke.add_argument("id", type=int, help="the key's id (see `keys list`)")
    revoke.set_defaults(run=cmd_revoke)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.database_url is not None:
        overrides["database_url"] = args.database_url
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings)
        with Store.open(settings.database_url) as store:
            code: int = args.run(store, settings, args)
            return code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except RetryableError as exc:
        print(f"{PROG}: unavailable: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (ArgumentError, NoSuchModuleError) as exc:
        print(f"{PROG}: error: invalid database URL: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: database error: {_one_line(first)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
