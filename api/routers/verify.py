"""The public authenticity check: ``GET /v1/verify/{code}`` (no login, rate-limited per client address and
for all clients together).

``code`` is an item's GS1 URI, Digital Link or element string, its 0x item id, or a return's label code
(``RMA-...``); slashes and colons may appear as they are or URL-encoded. The domain work is in
:mod:`ledger_service.verification.consumer`.

Rate limits (the ``limits`` syntax, e.g. ``60/minute`` or ``10/second;60/minute``), moving windows kept in
this process's memory (each API worker and replica counts on its own): ``settings.verify_rate_limit`` per
client address, ``settings.verify_global_rate_limit`` for everyone together (each check makes the node work,
and addresses are cheap to come by). The client address is the TCP peer's, or the one a trusted proxy
forwarded (``settings.trusted_proxies``, applied by the server: :func:`api.main.uvicorn_config`). The
settings are parsed when the first check arrives (or by :func:`rate_limiter` at startup); a bad one is a
:class:`ConfigurationError` naming it. Over a limit: 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.convertors import Convertor, register_url_convertor

from api.deps import ServicesDep
from api.problems import problem_responses
from api.routers._present import token_decimals
from api.schemas.common import at, utc
from api.schemas.verify import (
    AuthenticityFindingPublic,
    AuthenticityPublic,
    ItemAuthenticityPublic,
    ReturnAuthenticityPublic,
)
from ledger_service.errors import ConfigurationError, RateLimitedError
from ledger_service.returns.views import state_name
from ledger_service.settings import Settings
from ledger_service.verification.consumer import (
    MAX_CODE_LENGTH,
    CodeCheck,
    Decimals,
    ItemCheck,
    ReturnCheck,
    check_code,
    format_amount,
)
from ledger_service.verification.model import Finding

router = APIRouter(prefix="/verify", tags=["verify"])


class _CodeConvertor(Convertor[str]):
    """The rest of the path, whatever it holds (``:path`` stops at a newline, which would answer 404): the
    domain says what is wrong with a code (422)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("verify_code", _CodeConvertor())

_LIMITER_KEY = "verify_rate_limiter"
_limiter_lock = threading.Lock()


def _parse_limit(spec: str, variable: str) -> list[RateLimitItem]:
    try:
        items = parse_many(spec)
    except ValueError as exc:
        raise ConfigurationError(
            f"{variable}={spec!r} is not a rate limit: write e.g. 60/minute or 10/second;60/minute ({exc})"
        ) from None
    if not items or any(item.amount < 1 for item in items):
        raise ConfigurationError(f"{variable}={spec!r} must allow at least 1 request per window")
    return items


class RateLimiter:
    """Requests per client address, and from all clients together, over moving windows (``limits``, in
    memory). Thread-safe. ``name`` keys the windows and names the settings in messages (``verify``:
    LEDGER_VERIFY_RATE_LIMIT and LEDGER_VERIFY_GLOBAL_RATE_LIMIT); ``what`` names the requests in answers."""

    def __init__(
        self, spec: str, *, everyone: str | None = None, name: str = "verify", what: str = "verification"
    ) -> None:
        self.spec = spec
        self._name = name
        self._what = what
        setting = f"LEDGER_{name.upper()}"
        self._items = _parse_limit(spec, f"{setting}_RATE_LIMIT")
        self._everyone = [] if everyone is None else _parse_limit(everyone, f"{setting}_GLOBAL_RATE_LIMIT")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, client: str) -> None:
        """Counts one request of ``client``; :class:`RateLimitedError` when it is over its own limit or when
        all clients together are over theirs (a client over its own limit does not count against the
        others')."""
        for item in self._items:
            if not self._limiter.hit(item, self._name, client):
                retry_after = self._retry_after(item, self._name, client)
                raise RateLimitedError(
                    f"too many {self._what} requests from this address (at most {item}); try again in {retry_after} s",
                    retry_after=retry_after,
                )
        everyone = f"{self._name}-everyone"
        for item in self._everyone:
            if not self._limiter.hit(item, everyone):
                retry_after = self._retry_after(item, everyone)
                raise RateLimitedError(
                    f"the {self._what} service is answering as many requests as it can (at most {item} from "
                    f"everyone together); try again in {retry_after} s",
                    retry_after=retry_after,
                )

    def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        reset = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset - time.time()))


def rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter ``settings.verify_rate_limit`` and ``settings.verify_global_rate_limit`` describe
    (:class:`ConfigurationError` if one is malformed)."""
    return RateLimiter(settings.verify_rate_limit, everyone=settings.verify_global_rate_limit)


def app_limiter(request: Request, key: str, make: Callable[[], RateLimiter]) -> RateLimiter:
    """The application's limiter kept under ``key`` in its state, made by ``make`` on first use."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, key, None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(state, key, None)
            if limiter is None:
                limiter = make()
                setattr(state, key, limiter)
    return limiter


def client_address(request: Request) -> str:
    """The request's client address (the TCP peer's, or the one a trusted proxy forwarded)."""
    return request.client.host if request.client is not None else "unknown"


def enforce_rate_limit(request: Request, svc: ServicesDep) -> None:
    """Counts the request against its client address (before the code is even read)."""
    app_limiter(request, _LIMITER_KEY, lambda: rate_limiter(svc.settings)).hit(client_address(request))


CodePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_CODE_LENGTH,
        description="an item's GS1 URI (urn:epc:id:sgtin:...), GS1 Digital Link (https://id.gs1.org/01/{GTIN}/21/"
        "{serial}), element string ((01)...(21)...) or 0x item id, or a return's label code (RMA-...); "
        "slashes and colons as they are or URL-encoded",
        examples=["urn:epc:id:sgtin:0614141.107346.2017"],
    ),
]


@router.get(
    "/{code:verify_code}",
    response_model=AuthenticityPublic,
    responses=problem_responses(422, 429),
    summary="Check that an item or a return label is genuine (public)",
    dependencies=[Depends(enforce_rate_limit)],
)
def verify(code: CodePath, svc: ServicesDep) -> AuthenticityPublic:
    """No login. For an item: whether a manufacturer-role holder registered it, whether its history matches
    the chain, and where it is now. For a return label: whether the return exists on-chain, its amount,
    deadlines and state. An unknown item or return is an answer (`genuine: false`), not an error; a code
    that is not one of the accepted forms is a 422 problem. Consumer addresses are masked."""
    decimals = token_decimals(svc)
    result = check_code(store=svc.store, chain=svc.chain, code=code, decimals=decimals)
    return _public(result, decimals)


def _finding(finding: Finding) -> AuthenticityFindingPublic:
    return AuthenticityFindingPublic(
        kind=finding.kind, severity=finding.severity.value, message=finding.message, seq=finding.seq
    )


def _item(item: ItemCheck) -> ItemAuthenticityPublic:
    return ItemAuthenticityPublic(
        item_id=item.item_id,
        uri=item.uri,
        gtin=str(item.gtin).zfill(14),
        registered_at=at(item.registered_at),
        manufacturer=item.manufacturer,
        manufacturer_role_at_registration=item.manufacturer_role_at_registration,
        holds_manufacturer_role_now=item.holds_manufacturer_role_now,
        on_chain=item.on_chain,
        history_intact=item.history_intact,
        event_count=item.event_count,
        state_summary=item.state_summary,
        findings=[_finding(f) for f in item.findings],
    )


def _return(ret: ReturnCheck, decimals: Decimals) -> ReturnAuthenticityPublic:
    places = decimals(ret.token) if ret.token is not None else None
    return ReturnAuthenticityPublic(
        rma=ret.label_code,
        return_id=ret.return_id,
        exists_on_chain=ret.exists_on_chain,
        item_id=ret.item_id,
        state=None if ret.state is None else state_name(ret.state),
        token=ret.token,
        amount=None if ret.amount is None else str(ret.amount),
        decimals=places,
        amount_decimal=None if ret.amount is None else format_amount(ret.amount, places),
        restocking_fee_bps=ret.fee_bps,
        ship_by=utc(ret.ship_by),
        inspect_by=utc(ret.inspect_by),
        dispute_by=utc(ret.dispute_by),
        settled=ret.settled,
        refund_paid=ret.refund_paid,
        refund_amount=None if ret.refund_amount is None else str(ret.refund_amount),
        consumer=ret.consumer,
        unit_mismatch=ret.unit_mismatch,
        findings=[_finding(f) for f in ret.findings],
    )


def _public(result: CodeCheck, decimals: Decimals) -> AuthenticityPublic:
    return AuthenticityPublic(
        code=result.code,
        kind=result.kind,
        genuine=result.genuine,
        verdict=list(result.verdict),
        item=None if result.item is None else _item(result.item),
        return_=None if result.ret is None else _return(result.ret, decimals),
        checked_at=at(result.checked_at),
        indexed_block=result.indexed_block,
    )
