"""Root of the test tree.

tests/contracts/ runs under brownie (its own venv, `brownie test`); everything
else runs under the service's pytest. Each side ignores the other's files.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("brownie") is None:
    collect_ignore = ["contracts"]
    pytest_plugins = ["tests.support.chain", "tests.support.db"]
