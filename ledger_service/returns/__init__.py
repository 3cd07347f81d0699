"""The returns workflow: policies, sales and deliveries, return requests and every step of a return.

Writes go to the chain (each signed by the acting account, consumers' steps by
the relayer) and return the transaction; reads come from the index and the API's
own records (:mod:`ledger_service.store`'s items, sales, policies and returns
modules). No HTTP here: the API's routers
call these functions, which take keyword-only arguments and raise
:mod:`ledger_service.errors` classes the API maps to statuses.

Modules: :mod:`.documents` (policy documents and digests), :mod:`.decision`
(the rules' facts gathered and decided for an item), :mod:`.requests` (review, escrow authorization, the
manual queue, one return per item under concurrency), :mod:`.actions` (every
other step), :mod:`.views` (what is shown, and to whom).
"""

from ledger_service.returns._chain import TxResult, chain_now
from ledger_service.returns.actions import (
    DocumentedTx,
    PublishedPolicy,
    RecordedSale,
    ScanKind,
    cancel_return,
    claim_uninspected,
    dispute_return,
    publish_policy,
    reclaim,
    record_delivery,
    record_inspection,
    record_sale,
    resolve_dispute,
    scan_return,
)
from ledger_service.returns.decision import EligibilityCheck, check_eligibility
from ledger_service.returns.documents import PolicyDocument
from ledger_service.returns.requests import (
    RequestResult,
    ReturnAlreadyOpenError,
    ReviewPendingError,
    approve_request,
    reject_request,
    request_return,
)

__all__ = [
    "DocumentedTx",
    "EligibilityCheck",
    "PolicyDocument",
    "PublishedPolicy",
    "RecordedSale",
    "RequestResult",
    "ReturnAlreadyOpenError",
    "ReviewPendingError",
    "ScanKind",
    "TxResult",
    "approve_request",
    "cancel_return",
    "chain_now",
    "check_eligibility",
    "claim_uninspected",
    "dispute_return",
    "publish_policy",
    "reclaim",
    "record_delivery",
    "record_inspection",
    "record_sale",
    "reject_request",
    "request_return",
    "resolve_dispute",
    "scan_return",
]
