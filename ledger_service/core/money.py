"""Token amounts as people read them: integer base units with the token's decimals applied (no I/O)."""

from __future__ import annotations


def format_amount(amount: int, decimals: int | None) -> str | None:
    """``50000000`` with 6 decimals -> ``"50.000000"``; None when the decimals are not known."""
    if decimals is None:
        return None
    if decimals == 0:
        return str(amount)
    whole, fraction = divmod(amount, 10**decimals)  # exact for any uint256 (Decimal would round past 28 digits)
    return f"{whole}.{fraction:0{decimals}d}"


def short_amount(amount: int, decimals: int, symbol: str | None) -> str:
    """``45000000`` with 6 decimals and ``dUSD`` -> ``"45.00 dUSD"``: the exact amount with the zeros past the
    cents dropped (``45.125``, never rounded), then the symbol when there is one."""
    exact = format_amount(amount, decimals) or str(amount)
    if "." in exact:
        whole, fraction = exact.split(".")
        fraction = fraction.rstrip("0").ljust(2, "0")
        exact = f"{whole}.{fraction}"
    return f"{exact} {symbol}" if symbol else exact
