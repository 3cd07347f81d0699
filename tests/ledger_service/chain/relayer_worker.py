"""One API replica's sends, in its own process: ``python relayer_worker.py URL STORE_URL MANIFEST PREFIX N [kill]``.

Sends N registerItem calls with the manufacturer's key from four threads through a :class:`TxSender` whose nonce
book is the database's (as every API process does) and prints one line per outcome: ``ok <uri> <nonce>`` or
``error <uri> <message>``. With ``kill`` the process sends itself SIGKILL at the moment its first transaction
would be broadcast (after the sender recorded it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eth_account import Account
from eth_typing import HexStr
from web3 import Web3

from ledger_service.chain.artifacts import load_artifact
from ledger_service.chain.reverts import RevertDecoder
from ledger_service.chain.sender import TxSender
from ledger_service.core.hashchain import ZERO_HASH
from ledger_service.core.networks import default_fee_policy
from ledger_service.errors import LedgerError
from ledger_service.settings import ANVIL_ACCOUNTS
from ledger_service.store.handle import Store
from ledger_service.store.sent_transactions import SentTransactions

ARTIFACTS = Path(__file__).resolve().parents[3] / "build" / "contracts"
LOCATION = b"0614141.00777.0".ljust(32, b"\0")


def main() -> None:
    url, store_url, manifest, prefix, count = sys.argv[1:6]
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    abi = load_artifact("ProvenanceLedger", ARTIFACTS).abi
    address = json.loads(Path(manifest).read_text())["contracts"]["ProvenanceLedger"]["address"]
    ledger = w3.eth.contract(address=address, abi=abi)
    store = Store.open(store_url)
    sender = TxSender(
        w3=w3,
        account=Account.from_key(ANVIL_ACCOUNTS[1][1]),
        decoder=RevertDecoder([abi]),
        policy=default_fee_policy(),
        book=SentTransactions(store),
        receipt_timeout=120,
    )
    owner = ANVIL_ACCOUNTS[2][0]
    if sys.argv[6:] == ["kill"]:

        def killed(raw: bytes) -> str:
            os.kill(os.getpid(), signal.SIGKILL)
            raise AssertionError("unreachable")

        sender._broadcast = killed  # type: ignore[method-assign]

    def register(n: int) -> str:
        uri = f"urn:epc:id:sgtin:0614141.107346.{prefix}{n}"
        try:
            sent = sender.send(ledger.functions.registerItem(uri, 1, owner, ZERO_HASH, LOCATION))
        except LedgerError as exc:
            return f"error {uri} {exc}"
        nonce = w3.eth.get_transaction(HexStr(sent.tx_hash))["nonce"]
        return f"ok {uri} {nonce}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        for line in pool.map(register, range(int(count))):
            print(line, flush=True)
    store.close()


if __name__ == "__main__":
    main()
