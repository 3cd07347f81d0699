"""Notifications out: ``ledger-notify`` delivers the outbox (``store/notifications.py``) to merchants' webhooks,
signed per the Standard Webhooks specification, and to consumers by e-mail; the API streams it per return.

Invariants: every outbox row is delivered at least once to every target subscribed when it was dispatched, with
the same ``webhook-id`` (the notification's stable id) and the same body on every attempt; a failing target is
retried with exponential backoff until its retry window ends, then dead-lettered (visible and replayable), never
silently dropped; one slow or failing target cannot hold up the others (per-target caps on each claim and on
concurrent requests).
"""
