"""Chain indexer: mirrors ProvenanceLedger and ReturnsEscrow events into the index.

Invariants: events are applied in the total order (block number, log index);
rows and the checkpoint are written in one DB transaction; every indexed block
above finality has its (number, hash, parentHash) stored, so a reorg is found
by a parent-hash mismatch and undone back to the common ancestor.

Modules: :mod:`.rpc` (raw JSON-RPC client, error classes), :mod:`.decode`
(raw logs -> :mod:`ledger_service.core.events` and their rows), :mod:`.wire`
(frames over a fetch process's pipe), :mod:`.completeness` (what proves no log
was left out), :mod:`.sync` (the :class:`~.sync.Indexer`), :mod:`.cli` (the
``ledger-indexer`` command). It writes through the store's public interface
only; the store imports nothing from here (pyproject.toml's import contracts).
"""
