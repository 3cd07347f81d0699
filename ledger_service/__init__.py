"""Ledger service: mirrors the contracts' events into an off-chain index and serves the domain logic.

Data flows one way: writes go to the chain, the indexer mirrors the chain's
events into the index, reads come from the index (see docs/architecture.md).
"""
