"""Chain indexer: mirrors ProvenanceLedger and ReturnsEscrow events into the index.

Invariants: events are applied in the total order (block number, log index);
rows and the checkpoint are written in one DB transaction; every indexed block
above finality has its (number, hash, parentHash) stored, so a reorg is found
by a parent-hash mismatch and undone back to the common ancestor.

Modules: :mod:`.rpc` (raw JSON-RPC client, error classes), :mod:`.decode`
(raw logs -> :mod:`.events`), :mod:`.sync` (the :class:`~.sync.Indexer`),
:mod:`.cli` (the ``ledger-indexer`` command). Nothing is re-exported here:
the store imports :mod:`.events`, and this package must stay import-light.
"""
