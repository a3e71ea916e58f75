"""Language identification by py3langid, whose model ships inside its package (it runs offline).

Used on web documents (ingestion) and on generated instructions (augmentation). A text is dropped
only when the identifier names a language outside the accepted ones *with confidence*: short or
name-heavy texts (``"Jessica Heilman"``) get low-confidence guesses, and a missed foreign text costs
less than a lost English one.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from humpback.params import LanguageParams


@cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """The most probable language (ISO 639-1 code) and its probability."""
    language, probability = _identifier().classify(text)
    return language, float(probability)


def other_language(texts: Iterable[str], params: LanguageParams) -> list[bool]:
    """True for each text identified as a language outside ``params.languages`` with at least
    ``params.min_confidence``."""
    accepted = set(params.languages)
    verdicts = []
    for text in texts:
        language, probability = identify(text)
        verdicts.append(language not in accepted and probability >= params.min_confidence)
    return verdicts
