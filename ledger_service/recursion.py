"""The interpreter's recursion limit in the service's processes: CPython's default, restored after imports.

Invariant: once :func:`restore_recursion_limit` ran (``api.main`` at import and again at each worker's
startup, the indexer CLI before it talks to a node), ``sys.getrecursionlimit()`` is
:data:`SERVICE_RECURSION_LIMIT`, and importing any module of ``ledger_service`` or ``api`` does not change it
(tests/ledger_service/test_recursion.py imports them all).

Why: py_ecc, which the eth stack imports, raises the limit to 100,000 at import. C code such as the
``json`` decoder recurses on the C stack and stops only at this limit; at 100,000 a body of a few hundred
kilobytes of nested ``[`` overflows the C stack first and the process dies of a segfault instead of
raising ``RecursionError``. Nothing the service runs needs deeper recursion than the default allows.
"""

from __future__ import annotations

import sys

SERVICE_RECURSION_LIMIT = 1000
"""CPython's default: deep enough for the service, shallow enough for the C stack of any thread."""


def restore_recursion_limit() -> None:
    """Sets the recursion limit back to :data:`SERVICE_RECURSION_LIMIT` (an import may have raised it)."""
    sys.setrecursionlimit(SERVICE_RECURSION_LIMIT)
