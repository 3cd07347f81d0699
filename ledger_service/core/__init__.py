"""The bottom layer: what every other package may use, which itself uses nothing of ours above it.

No I/O: the EPCIS code table (:mod:`.codes`), the decoded contract events (:mod:`.events`) and their
row form (:mod:`.rows`), keccak256 (:mod:`.keccak`) and the per-item hash chain (:mod:`.hashchain`).
It imports only the standard library, pure third-party code (eth_abi, eth_utils, safe-pysha3) and the
shared utilities beside it (``errors``); the layers contract in pyproject.toml keeps it so.
"""
