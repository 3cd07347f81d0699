"""Read-only contract calls whose failures become the service's errors, never raw exception text.

web3.py raises many kinds of exception for one failed call (a revert with or without data, an answer
that is not ABI-encoded, an RPC error, a lost connection), and their text is not meant for people:
``('execution reverted', '0x')``. :func:`call` turns them into

- :class:`~ledger_service.chain.reverts.ContractRevertError` for a revert (decoded by the contracts'
  ABIs, so the API can explain it),
- :class:`~ledger_service.errors.RetryableError` when the node cannot be reached,
- :class:`ChainCallError` for anything else,

each with a sentence that says what failed; the library's own text goes only to the log.
"""

from __future__ import annotations

from typing import Any

import requests
import structlog
from eth_abi.exceptions import DecodingError
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from ledger_service.chain.reverts import RevertDecoder
from ledger_service.errors import RetryableError

log = structlog.get_logger(__name__)


class ChainCallError(RetryableError):
    """A chain call failed for a reason neither a contract error nor the node's availability explains (an answer
    that is not ABI-encoded, an RPC error). The message says which call; the detail is only in the log."""


def unreachable(what: str, exc: BaseException) -> RetryableError:
    """The error for a node that could not be reached while doing ``what`` (logged with its detail)."""
    log.warning("chain node unreachable", call=what, error_type=type(exc).__name__)
    return RetryableError(f"the chain node did not answer while {what}")


def failed(what: str, exc: BaseException) -> ChainCallError:
    """The error for a call that failed in an unexplained way (logged with its kind, not its arguments)."""
    log.warning("chain call failed", call=what, error_type=type(exc).__name__, error=str(exc)[:200])
    return ChainCallError(f"the chain node could not complete {what}; the detail is in the service's log")


def call(function: ContractFunction, *, decoder: RevertDecoder, what: str, **options: Any) -> Any:
    """``function.call(**options)``; errors as the module docstring says (``what`` names the call for people)."""
    try:
        return function.call(**options)
    except (ContractCustomError, ContractLogicError) as exc:
        data = exc.data if isinstance(exc.data, str) else None
        raise decoder.decode(data) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise unreachable(what, exc) from None
    except (Web3Exception, DecodingError, ValueError, OverflowError) as exc:
        raise failed(what, exc) from None
