"""The assistant's classifiers: intent and return reason, from character and word n-grams (scikit-learn).

Character n-grams (1-4, within word boundaries) read Chinese without segmentation and survive typos;
word n-grams (1-2) add English phrases. Each classifier is a linear SVM with sigmoid-calibrated
probabilities, which are what the assistant calls confidence: below :data:`INTENT_MIN_CONFIDENCE` (or, for the
reason of a return, :data:`REASON_MIN_CONFIDENCE`) it asks one question instead of guessing.

The trained artefact (``data/model.joblib``, built by scripts/bootstrap.sh through
scripts/train_assistant.py, not committed) records the training data's hash and the scikit-learn version;
:func:`load_model` refuses one that does not match the data files or the installed scikit-learn. It is a
pickle: only ever load one this checkout built.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_service.assistant.dataset import (
    DATA_DIR,
    Intent,
    Utterance,
    data_hash,
    load,
    normalise,
    split,
    with_reason,
)
from ledger_service.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import FeatureUnion, Pipeline

# scikit-learn and joblib are imported where a model is trained, saved or loaded, and numpy where one runs,
# not with this module: they take a second to import, which every API worker would pay at start-up before its
# first assistant message.

MODEL_PATH = DATA_DIR / "model.joblib"
INTENT_MIN_CONFIDENCE = 0.45
REASON_MIN_CONFIDENCE = 0.40
_LATIN_WORD = r"[a-z][a-z']*"


def _pipeline() -> Pipeline:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(analyzer="char", ngram_range=(1, 4), preprocessor=normalise, sublinear_tf=True),
            ),
            # Latin words only: a run of Han characters is no word, and as one token it is only memorised
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=(1, 2),
                    preprocessor=normalise,
                    token_pattern=_LATIN_WORD,
                    sublinear_tf=True,
                ),
            ),
        ]
    )
    # A linear SVM (the better of the two on 3-fold cross-validation of the training split) with sigmoid
    # calibration: its probabilities are what the assistant compares with the thresholds.
    classifier = CalibratedClassifierCV(LinearSVC(C=1.0, random_state=0), cv=3, ensemble=False)
    return Pipeline([("features", features), ("classifier", classifier)])


@dataclass(frozen=True, slots=True)
class Scored:
    """A label and the classifier's probability for it."""

    label: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the classifiers say about one message."""

    intent: Scored
    reason: Scored
    intent_ranking: tuple[Scored, ...]


class FastClassifier:
    """A trained pipeline's ``predict_proba`` for one text, without scikit-learn's per-call overhead (input
    checks, sparse matrix building): the vectorizers' own analyzers, their vocabularies and idf weights, one
    gather over the linear models' weights, the sigmoid calibrators, the same normalisation and averaging.
    A test compares it with the pipeline on every held-out message (the pipeline is the reference)."""

    def __init__(self, pipeline: Pipeline) -> None:
        import numpy as np

        union: FeatureUnion = pipeline.named_steps["features"]
        calibrated: CalibratedClassifierCV = pipeline.named_steps["classifier"]
        self.classes = tuple(str(c) for c in calibrated.classes_)
        self._blocks: list[tuple[Callable[[str], list[str]], dict[str, int], np.ndarray, int]] = []
        offset = 0
        for _, vectorizer in union.transformer_list:
            vocabulary = {str(term): int(index) for term, index in vectorizer.vocabulary_.items()}
            self._blocks.append((vectorizer.build_analyzer(), vocabulary, np.asarray(vectorizer.idf_), offset))
            offset += len(vocabulary)
        weights, intercepts, slopes, biases = [], [], [], []
        for member in calibrated.calibrated_classifiers_:
            if tuple(str(c) for c in member.estimator.classes_) != self.classes:
                raise ValueError("a calibrated member was fitted on other classes than the whole")
            weights.append(np.asarray(member.estimator.coef_))
            intercepts.append(np.asarray(member.estimator.intercept_))
            slopes.append([c.a_ for c in member.calibrators])
            biases.append([c.b_ for c in member.calibrators])
        self._members = len(weights)
        self._weights_t = np.ascontiguousarray(np.vstack(weights).T)  # features x (members * classes)
        self._intercepts = np.concatenate(intercepts)
        self._slopes = np.asarray(slopes, dtype=float).ravel()
        self._biases = np.asarray(biases, dtype=float).ravel()

    def _features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for analyzer, vocabulary, idf, offset in self._blocks:
            counts: dict[int, int] = {}
            for term in analyzer(text):
                index = vocabulary.get(term)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            block = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            weight = (1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))) * idf[block]
            weight /= np.sqrt(weight @ weight)
            indices.append(block + offset)
            values.append(weight)
        if not indices:
            return np.empty(0, dtype=np.intp), np.empty(0)
        return np.concatenate(indices), np.concatenate(values)

    def proba(self, text: str) -> np.ndarray:
        """The probabilities of :attr:`classes` for ``text``."""
        import numpy as np

        indices, values = self._features(text)
        scores = values @ self._weights_t[indices] + self._intercepts
        per_class = (1.0 / (1.0 + np.exp(self._slopes * scores + self._biases))).reshape(self._members, -1)
        totals = per_class.sum(axis=1, keepdims=True)
        uniform = np.full_like(per_class, 1.0 / per_class.shape[1])
        normalised = np.divide(per_class, totals, out=uniform, where=totals != 0)
        return np.asarray(normalised.mean(axis=0))

    def ranked(self, text: str) -> tuple[Scored, ...]:
        return _rank(self.classes, self.proba(text))


@dataclass(frozen=True)
class AssistantModel:
    """The two trained classifiers, the training data's hash, and the English words they saw."""

    intent: Pipeline
    reason: Pipeline
    data_hash: str
    sklearn_version: str
    english_words: frozenset[str]
    fast_intent: FastClassifier = field(init=False, repr=False)
    fast_reason: FastClassifier = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fast_intent", FastClassifier(self.intent))
        object.__setattr__(self, "fast_reason", FastClassifier(self.reason))

    def predict(self, text: str) -> Prediction:
        """Intent and reason of one message (the reason whatever the intent: the caller decides whether it
        applies), through the fast path."""
        intent_ranking = self.fast_intent.ranked(text)
        return Prediction(intent_ranking[0], self.fast_reason.ranked(text)[0], intent_ranking)

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        """:meth:`predict` of many messages, through the pipelines (the reference)."""
        intents = self.intent.predict_proba(list(texts))
        reasons = self.reason.predict_proba(list(texts))
        out = []
        for intent_row, reason_row in zip(intents, reasons, strict=True):
            intent_ranking = _rank(self.intent.classes_, intent_row)
            out.append(Prediction(intent_ranking[0], _rank(self.reason.classes_, reason_row)[0], intent_ranking))
        return out


def _rank(classes: Any, probabilities: Any) -> tuple[Scored, ...]:
    pairs = sorted(zip(classes, probabilities, strict=True), key=lambda pair: -float(pair[1]))
    return tuple(Scored(str(label), float(p)) for label, p in pairs)


def _english_words(utterances: Sequence[Utterance]) -> frozenset[str]:
    words: set[str] = set()
    for utterance in utterances:
        if utterance.lang == "en":
            words.update(re.findall(r"[a-z']+", utterance.text.lower()))
    return frozenset(words)


def train(utterances: Sequence[Utterance], *, data_hash_: str) -> AssistantModel:
    """Both classifiers fitted on ``utterances`` (the reason classifier on those with a reason)."""
    import sklearn

    intent = _pipeline().fit([u.text for u in utterances], [u.intent.value for u in utterances])
    reasoned = with_reason(utterances)
    reason = _pipeline().fit([u.text for u in reasoned], [str(u.reason) for u in reasoned])
    return AssistantModel(intent, reason, data_hash_, sklearn.__version__, _english_words(utterances))


def train_from_data(directory: Path = DATA_DIR, *, held_out_too: bool = False) -> AssistantModel:
    """The model trained on the data files' training split (``held_out_too``: on every utterance)."""
    utterances = load(directory)
    training = utterances if held_out_too else split(utterances)[0]
    return train(training, data_hash_=data_hash(directory))


def save(model: AssistantModel, path: Path = MODEL_PATH) -> None:
    """Writes the artefact atomically (a reader never sees half a file)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    joblib.dump(
        {
            "data_hash": model.data_hash,
            "sklearn_version": model.sklearn_version,
            "intent": model.intent,
            "reason": model.reason,
            "english_words": sorted(model.english_words),
        },
        partial,
        compress=3,
    )
    partial.replace(path)


_RETRAIN = "run scripts/train_assistant.py (scripts/bootstrap.sh does when the data changes)"


def load_model(path: Path = MODEL_PATH, *, expected_hash: str | None = None) -> AssistantModel:
    """The artefact at ``path``, checked against the data files' hash (``expected_hash``, default: the shipped
    data's) and the installed scikit-learn; :class:`ConfigurationError` with what to run otherwise."""
    if not path.is_file():
        raise ConfigurationError(f"the assistant's model {path} is missing: {_RETRAIN}")
    import joblib
    import sklearn

    stored = joblib.load(path)
    wanted = data_hash() if expected_hash is None else expected_hash
    if not isinstance(stored, dict) or stored.get("data_hash") != wanted:
        raise ConfigurationError(
            f"the assistant's model {path} was trained on other data than the shipped files: {_RETRAIN}"
        )
    if stored.get("sklearn_version") != sklearn.__version__:
        raise ConfigurationError(
            f"the assistant's model {path} was trained with scikit-learn {stored.get('sklearn_version')}, "
            f"{sklearn.__version__} is installed: {_RETRAIN}"
        )
    return AssistantModel(
        stored["intent"], stored["reason"], wanted, stored["sklearn_version"], frozenset(stored["english_words"])
    )


_loaded: AssistantModel | None = None
_lock = threading.Lock()


def shared_model() -> AssistantModel:
    """The process's model, loaded (and checked) once."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = load_model()
    return _loaded


__all__ = [
    "INTENT_MIN_CONFIDENCE",
    "MODEL_PATH",
    "REASON_MIN_CONFIDENCE",
    "AssistantModel",
    "Intent",
    "Prediction",
    "Scored",
    "load_model",
    "save",
    "shared_model",
    "train",
    "train_from_data",
]
