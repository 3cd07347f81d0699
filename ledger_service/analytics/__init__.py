"""Return analytics: rates, reasons, themes, outcomes and money, speed, and suggestions in words.

Pure modules (no I/O, separately testable): ``stats`` (rates, shares, percentiles), ``themes`` (comment terms
in zh and en), ``suggestions`` (the rules). ``report`` reads the rollups through ``store.analytics`` and
answers flat tables; ``refresh`` keeps the rollups current. The rules are in docs/analytics.md.
"""
