import pandas as pd
import pytest

from humpback.data.dedup import near_duplicate_mask
from humpback.data.records import RawDataError
from humpback.pipelines.ingestion.quality import (
    gopher_quality_failure,
    gopher_repetition_failure,
    has_bad_words,
)
from humpback.pipelines.ingestion.web import (
    WEB_COLUMNS,
    boilerplate_line_fraction,
    normalise_whitespace,
    repeated_sentence_fraction,
)
from tests.conftest import clean_documents, params


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
    mask = near_duplicate_mask([base, other, variant], params("ingestion.web").near_duplicates)
    assert mask.tolist() == [False, False, True]


@pytest.mark.parametrize(
    "text, rule",
    [
        (None, "missing_or_empty_text"),
        ("", "missing_or_empty_text"),
        (3.14, "missing_or_empty_text"),
        ("word " * 30_000, "oversized_raw_text"),
        ("Too short to be an answer.", "shorter_than_min_chars"),
        (
            "Die Gezeiten sind das periodische Steigen und Fallen des Meeresspiegels, verursacht durch den Mond. "
            "Die meisten Orte am Meer haben zwei Hochwasser und zwei Niedrigwasser am Tag, und ihre Zeiten "
            "verschieben sich von Tag zu Tag. Springfluten entstehen, wenn Sonne und Mond in einer Linie stehen; "
            "Nippfluten eine Woche später, wenn beide im rechten Winkel zueinander ziehen. Seeleute, Fischer und "
            "Ingenieure lesen Gezeitentafeln, um ihre Arbeit zu planen, und Häfen veröffentlichen die Höhen. " * 2,
            "not_en",
        ),
        (ARTICLE + " Anyone who reads this is a fucking genius.", "c4_bad_words"),
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
    web, funnel = clean(pd.DataFrame([good, bad]), c4_bad_words=True)

    assert web["url"].tolist() == ["https://example.org/tides"]
    assert dropped(funnel, rule) == 1


def test_bad_words_are_whole_words_or_phrases():
    assert has_bad_words("They met at the Alabama Hot Pocket bar.")  # a listed phrase, any case
    assert not has_bad_words("The class assessed Essex passages.")  # "ass" inside words is not a match


GOPHER_QUALITY = params("ingestion.web").gopher_quality
GOPHER_REPETITION = params("ingestion.web").gopher_repetition


@pytest.mark.parametrize(
    "text, rule",
    [
        (ARTICLE, None),
        ("Tides rise and fall with the Moon.", "gopher_word_count"),  # 7 words < 50
        (" ".join(["internationalisation"] * 60), "gopher_mean_word_length"),
        (ARTICLE + " #tides" * 20, "gopher_symbol_word_ratio"),
        ("\n".join(f"- Measure the height of tides at harbour {i}" for i in range(12)), "gopher_bullet_lines"),
        ("\n".join(f"Read more about the tides of day {i} and then..." for i in range(12)), "gopher_ellipsis_lines"),
        (ARTICLE + " 1990" * 40, "gopher_alphabetic_words"),
        (" ".join(f"word{i} tides moon sea" for i in range(20)), "gopher_stop_words"),
    ],
)
def test_gopher_quality_rules_name_the_first_rule_a_text_fails(text, rule):
    assert gopher_quality_failure(text, GOPHER_QUALITY) == rule


@pytest.mark.parametrize(
    "text, rule",
    [
        (ARTICLE, None),
        ("\n".join(["Buy now and save big on every tide table."] * 3 + ["Tides rise."]), "gopher_duplicate_lines"),
        ("Subscribe to the tide newsletter " * 12 + PARAGRAPH, "gopher_top_2gram"),
        (PARAGRAPH + " and, in short, " + PARAGRAPH, "gopher_duplicate_5grams"),
    ],
)
def test_gopher_repetition_rules_name_the_first_rule_a_text_fails(text, rule):
    assert gopher_repetition_failure(text, GOPHER_REPETITION) == rule


def test_optional_rules_have_their_own_funnel_rows_when_enabled(c4_documents):
    on = {"enabled": True}
    web, funnel = clean(
        c4_documents.head(200),
        c4_bad_words=True,
        gopher_quality=GOPHER_QUALITY.model_dump() | on,
        gopher_repetition=GOPHER_REPETITION.model_dump() | on,
    )
    rules = funnel["rule"].tolist()
    assert rules.index("not_en") < rules.index("c4_bad_words") < rules.index("gopher_word_count")
    assert "gopher_stop_words" in rules and "gopher_duplicate_10grams" in rules
    assert funnel["dropped"].sum() == 200 - len(web)
    _, default = clean(c4_documents.head(200))
    assert not default["rule"].str.startswith(("gopher", "c4_bad")).any()  # off by default: not the paper's filters


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
