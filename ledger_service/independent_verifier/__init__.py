"""The independent verifier (``ledger-verify``): checks one item's history against the chain alone.

It talks to nothing but a JSON-RPC node and the ProvenanceLedger address an
auditor gives it: no index, no API, no settings of the service. From the node it
reads the item's ``ItemRegistered`` and ``ItemEventRecorded`` logs and the
contract's stored record (``itemOf``), all as of one block, and it holds when:

- the registration's URI hashes to the item id and its commissioning event is
  event #0, recorded by the manufacturer in the same transaction;
- events #0 .. #count-1 are each present exactly once, in that order on the chain;
- every event's fields hash to the eventHash it emitted, and every prevHash is
  the previous event's eventHash (hash chain: ``ledger_service/core/hashchain.py``);
- the last event's hash and the number of events equal the contract's head and
  count (so no event can be missing, added or altered without detection);
- every local file given is referenced as a document by some event.

Modules: ``_rpc`` (the JSON-RPC transport), ``check`` (fetching and checking),
``cli`` (arguments and the report). The verifier imports only the pure modules
``core`` (code table, hash chain, keccak) and ``documents.cid`` of the service; a test and the
layers contract in pyproject.toml keep it so.
"""
