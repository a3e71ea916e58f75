import pandas as pd
import pytest

from humpback.pipelines.ingestion.web import (
    WEB_COLUMNS,
    boilerplate_line_fraction,
    near_duplicate_mask,
    normalise_whitespace,
    repeated_sentence_fraction,
)
from humpback.records import RawDataError
from tests.conftest import clean_documents


def clean(documents: pd.DataFrame, **overrides):
    keywords = ["newsletter", "quick links", "advertisement"]
    return clean_documents(documents, **{"boilerplate_keywords": keywords, **overrides})


def dropped(funnel: pd.DataFrame, rule: str) -> int:
    return int(funnel.loc[funnel["rule"] == rule, "dropped"].sum())


def test_real_sample_is_bounded_unique_and_accounted_for(c4_documents):
    web, funnel = clean(c4_documents)

    assert list(web.columns) == WEB_COLUMNS
    assert 200 <= len(web) < len(c4_documents)
    assert web["n_chars"].between(600, 3000).all()
    assert web["doc_id"].is_unique and web["url"].str.startswith("http").all()
    assert not web["text"].str.contains("\t|  ").any()
    assert funnel["dropped"].sum() == len(c4_documents) - len(web)
    assert dropped(funnel, "shorter_than_min_chars") > 0 and dropped(funnel, "longer_than_max_chars") > 0


PARAGRAPH = (
    "Tides are the rise and fall of sea levels caused by the combined effects of the gravitational forces "
    "exerted by the Moon and the Sun, and the rotation of the Earth. Most places in the ocean have two high "
    "tides and two low tides each day, and the times at which they occur change from day to day. "
)
ARTICLE = PARAGRAPH + (
    "Spring tides happen when the Sun and the Moon line up, which makes the range between high and low water "
    "larger than usual. Neap tides happen a week later, when the two pull at right angles to each other. "
    "Coastal engineers, sailors and fishermen read tide tables to plan their work around these cycles, and "
    "harbours publish the predicted heights for every day of the year."
)


def test_near_duplicates_keep_the_first_document(c4_documents):
    base = c4_documents["text"].iloc[0]
    variant = base.replace("Missoula", "Helena", 1) + " Call us today."
    other = ARTICLE
    mask = near_duplicate_mask([base, other, variant], threshold=0.8, num_perm=128, bands=32, shingle_words=5)
    assert mask.tolist() == [False, False, True]


@pytest.mark.parametrize(
    "text, rule",
    [
        (None, "missing_or_empty_text"),
        ("", "missing_or_empty_text"),
        (3.14, "missing_or_empty_text"),
        ("word " * 30_000, "oversized_raw_text"),
        ("Too short to be an answer.", "shorter_than_min_chars"),
        ("Die Gezeiten sind das periodische Steigen und Fallen des Meeresspiegels. " * 12, "not_english_prose"),
        ("Buy cheap tickets now for the best seats in town today! " * 14, "repeated_sentences"),
        (
            "QUICK LINKS\nHome\nNewsletter\nAdvertisement\nShop\nAbout\nMenu\n" + ARTICLE.replace(". ", ".\n", 2),
            "boilerplate_lines",
        ),
    ],
)
def test_bad_documents_are_dropped_and_counted(text, rule):
    good = {"text": ARTICLE, "url": "https://example.org/tides", "timestamp": "2019-04-25T12:57:54Z"}
    bad = {"text": text, "url": "https://example.org/bad", "timestamp": "2019-04-25T12:57:54Z"}
    web, funnel = clean(pd.DataFrame([good, bad]))

    assert web["url"].tolist() == ["https://example.org/tides"]
    assert dropped(funnel, rule) == 1


def test_exact_duplicates_after_normalisation_are_dropped():
    text = ARTICLE
    frame = pd.DataFrame({"text": [text, text.replace(". ", ".   \t")], "url": ["https://a", "https://b"]})
    web, funnel = clean(frame)
    assert web["url"].tolist() == ["https://a"]
    assert dropped(funnel, "exact_duplicate") == 1


def test_missing_text_column_is_one_clear_error():
    with pytest.raises(RawDataError, match="missing column"):
        clean(pd.DataFrame({"content": ["x"]}))


def test_text_helpers():
    assert normalise_whitespace(" a \t b \r\n\n\n\n c ") == "a b\n\nc"
    assert repeated_sentence_fraction("One. Two. One.") == pytest.approx(4 / 12)
    assert boilerplate_line_fraction("HOME\nThis is a sentence with words.", []) == 0.5
