"""The assistant's model for the tests: the artefact the bootstrap built, or one trained here the same way
(on the training split only) when it is missing or stale."""

from __future__ import annotations

import pytest

from ledger_service.assistant.model import AssistantModel, load_model, train_from_data
from ledger_service.errors import ConfigurationError


@pytest.fixture(scope="session")
def model() -> AssistantModel:
    try:
        return load_model()
    except ConfigurationError:
        return train_from_data()
