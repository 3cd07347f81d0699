"""A sale's consumer e-mail address for notifications: given by the merchant with the sale, or by the consumer
with their return token. Stored off-chain only (``consumer_contacts``), never logged, never on-chain."""

from __future__ import annotations

import time
from typing import Literal

from ledger_service.errors import NotFoundError
from ledger_service.store import Store
from ledger_service.store.notifications import set_contact
from ledger_service.store.sales import current_sale

Lang = Literal["zh", "en"]


def set_sale_email(store: Store, *, item_id: str, sale_seq: int, email: str, lang: Lang) -> None:
    """The address the consumer of the item's sale ``sale_seq`` is told at (replacing an earlier one)."""
    set_contact(store, item_id=item_id.lower(), sale_seq=sale_seq, email=email, lang=lang, now=int(time.time()))


def set_current_email(store: Store, *, item_id: str, email: str, lang: Lang) -> int:
    """Sets the address of the item's current sale (the one a return token is for); returns its sale seq."""
    sale = current_sale(store, item_id)
    if sale is None:
        raise NotFoundError(f"item {item_id.lower()} has no sale in the index yet; retry in a moment")
    set_sale_email(store, item_id=item_id, sale_seq=sale.sale_seq, email=email, lang=lang)
    return sale.sale_seq
