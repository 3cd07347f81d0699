"""The assistant's sentences, in English and Chinese (pure).

Every sentence exists in both languages (a test checks it); placeholders are filled by :func:`say`. Amounts
and dates arrive formatted; ids are shown as they are.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]

OTHER_LANGUAGE = "I can help in Chinese or English. 我可以用中文或英文为您服务。"
"""The answer to a message in any other language: both languages at once, since neither is the reader's."""

REASON_NAMES: dict[str, tuple[str, str]] = {
    "damaged": ("arrived damaged", "到货破损"),
    "defective": ("does not work", "无法正常使用"),
    "wrong_item": ("wrong item sent", "发错商品"),
    "wrong_size": ("wrong size or fit", "尺码不合适"),
    "not_as_described": ("not as described", "与描述不符"),
    "changed_mind": ("changed my mind", "不想要了"),
    "other": ("another reason", "其他原因"),
}

STATE_NAMES: dict[str, tuple[str, str]] = {
    "pending_review": ("waiting for the merchant's review", "等待商家审核"),
    "request_rejected": ("declined", "已被拒绝"),
    "processing": ("approved, the escrow is being funded", "已批准，正在存入托管"),
    "authorized": ("authorized: waiting for the parcel to be shipped", "已授权：等待寄出包裹"),
    "cancelled": ("cancelled", "已取消"),
    "expired": ("expired: the parcel was not shipped in time", "已过期：未按时寄出"),
    "in_transit": ("on its way to the merchant", "正在寄往商家"),
    "received": ("received by the merchant, waiting for inspection", "商家已收货，等待检验"),
    "accepted": ("accepted after inspection", "检验通过"),
    "rejected": ("rejected at inspection", "检验未通过"),
    "disputed": ("disputed, with the arbiter", "争议处理中（仲裁）"),
    "resolved": ("resolved by the arbiter", "仲裁已裁决"),
    "reclaimed": ("closed: the deposit went back to the merchant", "已关闭：托管款退回商家"),
    "consumer_claimed": ("closed: you claimed the deposit", "已关闭：您已领取托管款"),
}

ELIGIBILITY_NAMES: dict[str, tuple[str, str]] = {
    "item_unknown": ("the item is not on the ledger", "该商品不在账本上"),
    "history_broken": ("the item's history does not verify", "商品的链上记录校验未通过"),
    "item_destroyed": ("the item was recorded as destroyed", "商品已被记录为销毁"),
    "item_recalled": ("the item is under a recall", "商品正在召回中"),
    "not_sold": ("the item has no sale to return", "该商品没有可退的销售记录"),
    "not_your_purchase": ("the item was not sold to you", "该商品不是卖给您的"),
    "no_policy": ("the shop has no return policy for this sale", "店铺对这笔销售没有退货政策"),
    "not_delivered": ("the item has not been delivered yet", "商品尚未送达"),
    "window_closed": ("the return window has closed", "退货期已过"),
    "exchange_window_closed": ("the exchange window has closed", "换货期已过"),
    "category_not_returnable": ("this category cannot be returned", "该品类不支持退货"),
    "return_already_open": ("a return for this item is already open", "该商品已有进行中的退货"),
    "reason_not_accepted": ("the policy does not accept this reason", "政策不接受该退货原因"),
}
"""The eligibility rules' reason codes (ledger_service/eligibility/rules.py) in words."""

SENTENCES: dict[str, tuple[str, str]] = {
    "clarify_intent": (
        "I'm not sure what you need: do you want to return or exchange an item, check a refund or a parcel, "
        "or ask about the return policy?",
        "我不太确定您需要什么：是要退货或换货、查询退款或包裹，还是咨询退货政策？",
    ),
    "clarify_reason": (
        "I can help you return it. What is wrong with the item: arrived damaged, does not work, wrong item "
        "sent, wrong size, not as described, or did you change your mind?",
        "可以帮您退货。请问商品是什么问题：到货破损、无法正常使用、发错商品、尺码不合适、与描述不符，还是不想要了？",
    ),
    "clarify_merchant": (
        "Which shop is it? Ask from your order's page, or name the merchant's account, and I will quote its "
        "return policy.",
        "请问是哪家店铺？请从订单页面提问，或提供商家账户，我会引用该店铺的退货政策。",
    ),
    "return_draft": (
        "I've drafted a return request with the reason \u201c{reason}\u201d. Check it and submit it in one tap: "
        "the merchant's published rules answer at once.",
        "已为您拟好退货申请，原因为\u201c{reason}\u201d。确认后一键提交，系统会按商家公布的规则立即答复。",
    ),
    "exchange_draft": (
        "Exchanges are made as a return and a new order. I've drafted the return with the reason "
        "\u201c{reason}\u201d: submit it, then order the size, colour or unit you want.",
        "换货以退货加重新下单的方式进行。已为您拟好退货申请，原因为\u201c{reason}\u201d：提交后，再下单您想要的尺码、颜色或新品即可。",
    ),
    "reason_not_accepted": (
        " Note: this shop's policy accepts returns only for: {accepted}.",
        "注意：该店铺的政策只接受以下原因的退货：{accepted}。",
    ),
    "would_approve": (
        " Under the shop's published rules it would be approved at once.",
        "按店铺公布的规则，提交后会立即批准。",
    ),
    "would_approve_fast": (
        " Under the shop's published rules it would be approved at once, with the refund paid at the carrier's "
        "first scan.",
        "按店铺公布的规则，提交后会立即批准，承运商首次扫描时即退款。",
    ),
    "would_review": (
        " The shop reviews this return by hand before it is approved.",
        "该退货需要店铺人工审核后才能批准。",
    ),
    "would_reject": (
        " As it stands it would be declined: {reasons}.",
        "按目前情况会被拒绝：{reasons}。",
    ),
    "needs_token": (
        " To submit it, open the link in your order e-mail (it carries your return token) and send your "
        "message from there.",
        "如需提交，请打开订单邮件中的链接（其中包含您的退货凭证），再从那里发送消息。",
    ),
    "status_needs_token": (
        "To look up your return, open the link in your order e-mail (it carries your return token) and ask "
        "me from there.",
        "查询退货需要您的退货凭证：请打开订单邮件中的链接，再从那里问我。",
    ),
    "no_return": (
        "You have no return for this purchase yet. If you want one, tell me what is wrong with the item.",
        "这笔订单还没有退货。如需退货，请告诉我商品有什么问题。",
    ),
    "return_state": (
        "Your return {id} is {state}.",
        "您的退货 {id} 状态：{state}。",
    ),
    "refund_paid": (
        " The refund of {amount} was paid on {date} (transaction {tx}).",
        "退款 {amount} 已于 {date} 支付（交易 {tx}）。",
    ),
    "refund_held": (
        " The refund of {amount} is held in escrow on-chain and not paid yet.",
        "退款 {amount} 已锁定在链上托管中，尚未支付。",
    ),
    "refund_none": (
        " No refund was paid to you.",
        "没有向您支付退款。",
    ),
    "fast_refund_pending": (
        " This return gets a fast refund: it is paid at the carrier's first scan.",
        "本次退货享受极速退款：承运商首次扫描时即付款。",
    ),
    "ship_by": (
        " Ship the parcel by {date} with the return label.",
        "请在 {date} 前贴好退货标签寄出包裹。",
    ),
    "inspect_by": (
        " The merchant must inspect it by {date}.",
        "商家须在 {date} 前完成检验。",
    ),
    "last_scan": (
        " Last parcel scan: {date}{where}.",
        "最近一次包裹扫描：{date}{where}。",
    ),
    "no_scan": (
        " The carrier has not scanned the parcel yet.",
        "承运商尚未扫描包裹。",
    ),
    "label": (
        " Your return label's code is {code}.",
        "您的退货标签编号为 {code}。",
    ),
    "policy": (
        "Under this shop's return policy (version {version}): you can ask for a return within {window} days of "
        "delivery; {fee}; {fast}. Once a return is authorized, ship it within {ship} days; the merchant inspects "
        "within {inspect} days of the first scan, and you have {dispute} days to dispute a failed inspection.",
        "根据该店铺的退货政策（第 {version} 版）：签收后 {window} 天内可申请退货；{fee}；{fast}。"
        "退货获批后须在 {ship} 天内寄出；商家在首次扫描后 {inspect} 天内检验；检验未通过时您有 {dispute} 天可以申诉。",
    ),
    "fee": ("a restocking fee of {percent}% of the price is kept", "商家保留售价 {percent}% 的重新上架费"),
    "no_fee": ("there is no restocking fee", "不收重新上架费"),
    "fast": (
        "fast refund: the refund is paid at the carrier's first scan{cap}",
        "支持极速退款：承运商首次扫描时即退款{cap}",
    ),
    "fast_cap": (" for orders up to {amount}", "（订单金额不超过 {amount}）"),
    "no_fast": (
        "the refund is paid after the merchant's inspection",
        "退款在商家检验后支付",
    ),
    "categories": (
        " Not returnable: {categories}.",
        "不可退货的品类：{categories}。",
    ),
    "cite": (
        " Source: policy version {version}, published on-chain in transaction {tx} (document {digest}).",
        "来源：第 {version} 版政策，链上交易 {tx} 发布（文件 {digest}）。",
    ),
    "complaint": (
        "I'm sorry about this. I cannot pass complaints on myself: please write to the shop. If it is about an "
        "item you bought, I can start a return or check one for you.",
        "非常抱歉给您带来不便。我无法代为转达投诉，请直接联系店铺。如果与您购买的商品有关，我可以为您发起或查询退货。",
    ),
    "complaint_reason": (
        "I'm sorry about this. If you want to send the item back ({reason}), I've drafted a return request you "
        "can submit in one tap.",
        "非常抱歉给您带来不便。如果您想退回商品（{reason}），已为您拟好退货申请，一键即可提交。",
    ),
    "other": (
        "I can help with returns, exchanges, refunds, return parcels and the return policy. What would you like to do?",
        "我可以帮您处理退货、换货、退款、退货包裹和退货政策方面的问题。请问需要什么帮助？",
    ),
}

_INDEX = {"en": 0, "zh": 1}


def say(key: str, lang: Lang, **fields: str) -> str:
    """The sentence ``key`` in ``lang`` with ``fields`` filled in."""
    return SENTENCES[key][_INDEX[lang]].format(**fields)


def reason_name(code: str, lang: Lang) -> str:
    """A reason code in words (the code itself when unknown)."""
    names = REASON_NAMES.get(code)
    return code if names is None else names[_INDEX[lang]]


def eligibility_name(code: str, lang: Lang) -> str:
    """An eligibility reason code in words (the code itself when unknown)."""
    names = ELIGIBILITY_NAMES.get(code)
    return code if names is None else names[_INDEX[lang]]


def state_name(state: str, lang: Lang) -> str:
    """A return's or request's state in words (the state's name when unknown)."""
    names = STATE_NAMES.get(state)
    return state if names is None else names[_INDEX[lang]]
