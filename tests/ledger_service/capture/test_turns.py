"""Captures of one account run one at a time in the order their jobs were opened, whatever order the worker
threads reach them in; other accounts' captures do not wait for them."""

from __future__ import annotations

import threading
import time

from ledger_service.capture.lease import Turns

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


def test_an_accounts_jobs_run_in_the_order_they_were_opened() -> None:
    turns = Turns()
    for capture_id in ("cap_1", "cap_2", "cap_3"):
        turns.join(A, capture_id)
    ran: list[str] = []

    def run(capture_id: str) -> None:
        with turns.turn(A.upper(), capture_id):
            ran.append(capture_id)
            time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("cap_3", "cap_2", "cap_1")]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # the later jobs reach their turn first
    for thread in threads:
        thread.join(timeout=10)
    assert ran == ["cap_1", "cap_2", "cap_3"]


def test_another_account_does_not_wait_and_a_job_not_opened_here_queues_last() -> None:
    turns = Turns()
    turns.join(A, "cap_1")
    with turns.turn(B, "cap_other"):  # A's first job has not run: B's is not held by it
        pass
    entered = threading.Event()

    def late() -> None:
        with turns.turn(A, "cap_late"):
            entered.set()

    thread = threading.Thread(target=late)
    thread.start()
    assert not entered.wait(0.2)  # behind cap_1
    with turns.turn(A, "cap_1"):
        pass
    assert entered.wait(10)
    thread.join(timeout=10)
