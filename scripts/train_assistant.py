"""Trains the assistant's classifiers on the training split of ledger_service/assistant/data/ and writes
ledger_service/assistant/data/model.joblib (with the data's hash; the held-out split is never seen).

    .venv/bin/python scripts/train_assistant.py [--check]

``--check``: exit 0 if the artefact exists and matches the data files and the installed scikit-learn,
1 otherwise (scripts/bootstrap.sh retrains then). Prints what it did; exits 2 with a message when the data
files cannot be read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_service.assistant import dataset
from ledger_service.assistant.model import MODEL_PATH, load_model, save, train_from_data
from ledger_service.errors import ConfigurationError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the artefact is current")
    args = parser.parse_args()
    if args.check:
        try:
            load_model()
        except ConfigurationError as exc:
            print(f"train_assistant: {exc}")
            return 1
        print(f"train_assistant: {MODEL_PATH} is current")
        return 0
    try:
        utterances = dataset.load()
    except (OSError, ValueError) as exc:
        print(f"train_assistant: cannot read the data files: {exc}", file=sys.stderr)
        return 2
    training, held_out = dataset.split(utterances)
    started = time.perf_counter()
    model = train_from_data()
    save(model)
    print(
        f"train_assistant: trained on {len(training)} of {len(utterances)} utterances ({len(held_out)} held out) "
        f"in {time.perf_counter() - started:.1f} s; wrote {MODEL_PATH} (data {model.data_hash[:12]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
