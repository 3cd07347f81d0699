"""Signing keys from encrypted keystores (Web3 Secret Storage JSON) and the ``ledger-keystore`` command.

A production service signs with keys kept encrypted on disk (``LEDGER_SIGNER_KEYSTORES``,
``LEDGER_RELAYER_KEYSTORE``), unlocked at start with one passphrase read from ``LEDGER_KEYSTORE_PASSPHRASE_FILE``
(a file only the service's user may read) or ``LEDGER_KEYSTORE_PASSPHRASE``. The passphrase and the keys are
never logged nor put in a message; every failure names the file and what to do.

``ledger-keystore create --out FILE`` makes a new account; ``ledger-keystore import --out FILE`` encrypts an
existing key read from standard input (never from the command line, where other users could read it). Both
print the account's address and write the file with mode 0600.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from ledger_service.errors import ConfigurationError
from ledger_service.settings import Settings, is_well_known_key

PASSPHRASE_ENV = "LEDGER_KEYSTORE_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
MIN_PASSPHRASE_CHARS = 12


def passphrase(settings: Settings) -> SecretStr:
    """The keystores' passphrase (the file's first line, or the variable)."""
    if settings.keystore_passphrase_file is not None:
        return read_passphrase_file(settings.keystore_passphrase_file)
    if settings.keystore_passphrase is not None:
        return settings.keystore_passphrase
    raise ConfigurationError(
        "the keystores are encrypted: set LEDGER_KEYSTORE_PASSPHRASE_FILE to a file holding their passphrase "
        "(or LEDGER_KEYSTORE_PASSPHRASE)"
    )


def read_passphrase_file(path: Path) -> SecretStr:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"passphrase file {path} not found (LEDGER_KEYSTORE_PASSPHRASE_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read passphrase file {path}: {type(exc).__name__}") from None
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first:
        raise ConfigurationError(f"passphrase file {path} is empty: its first line is the passphrase")
    return SecretStr(first)


def load_keystore(path: Path, secret: SecretStr, *, production: bool) -> LocalAccount:
    """Decrypts the keystore at ``path``; :class:`ConfigurationError` for a missing, unreadable or foreign file,
    a wrong passphrase, or (``production``) one of anvil's public development keys."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"keystore file {path} not found: create it with `ledger-keystore create --out {path}` or fix "
            "LEDGER_SIGNER_KEYSTORES / LEDGER_RELAYER_KEYSTORE"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"keystore file {path} is not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(document, dict) or not isinstance(document.get("crypto") or document.get("Crypto"), dict):
        raise ConfigurationError(f"{path} is not a keystore (Web3 Secret Storage JSON with a 'crypto' object)")
    try:
        key = bytes(Account.decrypt(document, secret.get_secret_value()))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise ConfigurationError(
                f"wrong passphrase for keystore {path} (LEDGER_KEYSTORE_PASSPHRASE_FILE or LEDGER_KEYSTORE_PASSPHRASE)"
            ) from None
        raise ConfigurationError(f"keystore {path} cannot be decrypted: its format is not supported") from None
    except (KeyError, TypeError, NotImplementedError):
        raise ConfigurationError(f"keystore {path} cannot be decrypted: its format is not supported") from None
    if production and is_well_known_key(key.hex()):
        raise ConfigurationError(
            f"keystore {path} holds one of anvil's public development keys; anyone can sign with it. With "
            "LEDGER_ENVIRONMENT=production use a key of your own (ledger-keystore create)"
        )
    account: LocalAccount = Account.from_key(key)
    stated = document.get("address")
    if isinstance(stated, str) and stated.lower().removeprefix("0x") != account.address[2:].lower():
        raise ConfigurationError(f"keystore {path} says address {stated} but its key is of {account.address}")
    return account


def keystore_accounts(settings: Settings) -> tuple[list[LocalAccount], LocalAccount | None]:
    """The accounts of LEDGER_SIGNER_KEYSTORES and LEDGER_RELAYER_KEYSTORE (decrypted once each)."""
    if not settings.signer_keystores and settings.relayer_keystore is None:
        return [], None
    secret = passphrase(settings)
    production = settings.environment == "production"
    signers = [load_keystore(path, secret, production=production) for path in settings.signer_keystores]
    relayer = (
        load_keystore(settings.relayer_keystore, secret, production=production)
        if settings.relayer_keystore is not None
        else None
    )
    return signers, relayer


# ---- the ledger-keystore command --------------------------------------------------------------------------


def _cli_passphrase(args: argparse.Namespace) -> str:
    if args.passphrase_file is not None:
        return read_passphrase_file(Path(args.passphrase_file)).get_secret_value()
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"no passphrase: give --passphrase-file FILE or set {PASSPHRASE_ENV} (standard input is not a terminal)"
        )
    first = getpass.getpass("passphrase for the new keystore: ")
    if getpass.getpass("the same passphrase again: ") != first:
        raise ConfigurationError("the two passphrases differ; nothing was written")
    return first


def _write_keystore(out: Path, key: bytes, secret: str, *, kdf_iterations: int | None) -> str:
    if len(secret) < MIN_PASSPHRASE_CHARS:
        raise ConfigurationError(f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    if out.exists():
        raise ConfigurationError(f"{out} exists already; choose another --out (a keystore is never overwritten)")
    document = Account.encrypt(key, secret, kdf="scrypt", iterations=kdf_iterations)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.write("\n")
    return str(Account.from_key(key).address)


def _read_key_from_stdin() -> bytes:
    text = getpass.getpass("private key (0x + 64 hex digits): ") if sys.stdin.isatty() else sys.stdin.readline()
    digits = text.strip().removeprefix("0x")
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigurationError("standard input does not hold a private key (0x + 64 hex digits)")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-keystore", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("create", "make a new account and write its encrypted keystore"),
        ("import", "encrypt a private key read from standard input"),
        ("address", "print the account of a keystore (checks the passphrase)"),
    ):
        command = commands.add_parser(name, help=text)
        if name == "address":
            command.add_argument("keystore", metavar="FILE")
        else:
            command.add_argument("--out", metavar="FILE", required=True)
        command.add_argument(
            "--passphrase-file",
            metavar="FILE",
            help=f"first line is the passphrase (else {PASSPHRASE_ENV} or a prompt)",
        )
        if name != "address":
            # lower work factors for tests only: a keystore meant for use keeps the standard one
            command.add_argument("--kdf-iterations", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        secret = _cli_passphrase(args)
        if args.command == "address":
            account = load_keystore(Path(args.keystore), SecretStr(secret), production=False)
            print(account.address)
            return 0
        key = bytes(Account.create().key) if args.command == "create" else _read_key_from_stdin()
        address = _write_keystore(Path(args.out), key, secret, kdf_iterations=args.kdf_iterations)
    except ConfigurationError as exc:
        print(f"ledger-keystore: {exc}", file=sys.stderr)
        return 2
    print(f"{address}  {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
