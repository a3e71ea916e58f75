"""The judge-free style measure: its tokens, its detector validated on real texts (and failing where
there is nothing to tell apart), the on-topic opener, and a model's answers described by them."""

from __future__ import annotations

import pandas as pd
import pytest

from humpback.data.style import WebStyleDetector, fit_web_style_detector, opens_on_topic, style_tokens
from humpback.pipelines.evaluation.style import fit_style_detector, style_summary
from tests.conftest import HELDOUT_PAIRS, params


def test_style_tokens_read_artefacts_line_shapes_and_neighbouring_pairs():
    tokens = style_tokens("Contact Us Today\nCall 555-123-4567 or visit https://shop.example.com/a for $19.99.", 500)
    assert tokens[:2] == ["<line>", "<title-case-line>"]
    assert {"<phone>", "<url>", "<price>", "call", "<line-upper>"} <= set(tokens)
    assert "call <phone>" in tokens  # neighbouring tokens as one
    assert style_tokens("I hope this helps.", 500)[:2] == ["<line>", "<line-upper>"]
    assert "<url>" not in style_tokens("Short. " * 20 + "https://example.com", 50)  # past the window


def test_the_detector_scores_by_the_mean_log_ratio_of_the_tokens_it_knows():
    detector = fit_web_style_detector(
        ["I hope this helps.", "I think so."], ["Visit https://a.com today.", "Visit https://b.com now."], 500, 1
    )
    assert detector.web_score("Visit https://c.com") > 0 > detector.web_score("I hope so.")
    assert WebStyleDetector({"visit": 1.0}, 500).web_score("zzz qqq") == 0.0  # nothing known: neither side
    assert WebStyleDetector.from_dict(detector.to_dict()) == detector
    with pytest.raises(ValueError, match="no token"):
        fit_web_style_detector(["I think so."], ["Visit us."], 500, min_count=100)


def test_the_on_topic_opener_needs_a_content_word_of_the_request_in_the_first_sentence():
    assert opens_on_topic("How do I cook rice?", "Cooking rice takes water and time. Then salt.")
    assert not opens_on_topic("How do I cook rice?", "Our shop is open on Sundays. Rice is on sale.")
    assert not opens_on_topic("What is this?", "This is that.")  # function words say nothing


def _fit(oasst1_messages, web_texts, heldout=HELDOUT_PAIRS, web_ids=None):
    ids = [f"d{i}" for i in range(len(web_texts))] if web_ids is None else list(web_ids)
    web = pd.DataFrame({"doc_id": ids, "text": list(web_texts)})
    seed_pairs = pd.DataFrame({"instruction": [], "response": []})
    return fit_style_detector(oasst1_messages, seed_pairs, web, heldout, params("ingestion.seed"), params("evaluation"))


def test_the_detector_tells_held_out_web_documents_from_assistant_replies_on_the_sample(oasst1_messages, c4_documents):
    detector, check = _fit(oasst1_messages, c4_documents["text"])
    auc = check["rows"][0]
    assert auc["passed"] and auc["value"] >= 0.9 and auc["ci_low"] > 0.85, auc
    assert check["validation_texts"]["web"] >= 200 and check["validation_texts"]["assistant"] >= 200
    scorer = WebStyleDetector.from_dict(detector)
    page = "Home | Shop | Contact Us\nPosted by admin on March 3, 2019\nClick here to order for $29.99!"
    reply = "Sure! Here is a simple way to do it:\n\n1. Preheat the oven.\n2. Mix the flour and sugar.\n\nI hope this helps."
    assert scorer.web_score(page) > 0 > scorer.web_score(reply)


def test_the_detector_check_fails_where_both_corpora_are_assistant_replies(oasst1_messages):
    """Half of the conversations posing as web documents (a conversation on one side only, as a
    document is): nothing but chance tells the two apart, and the check says so."""
    trees = oasst1_messages["message_tree_id"].drop_duplicates()
    posing = oasst1_messages["message_tree_id"].isin(trees.iloc[::2])
    as_web = oasst1_messages.loc[posing & (oasst1_messages["role"] == "assistant")]
    _, check = _fit(oasst1_messages.loc[~posing], as_web["text"], web_ids=as_web["message_tree_id"])
    auc = check["rows"][0]
    assert not auc["passed"] and abs(auc["value"] - 0.5) < 0.1, auc


def test_the_on_topic_control_tells_a_prompts_own_reference_from_another_prompts(oasst1_messages, c4_documents):
    _, check = _fit(oasst1_messages, c4_documents["text"].head(300))
    own, other = check["rows"][1]["value"], check["rows"][2]["value"]
    assert own == 1.0 and other == 0.0  # the test pairs' references share words with their own prompt only


def test_held_out_trees_never_teach_the_detector(oasst1_messages, c4_documents):
    tree = oasst1_messages["message_tree_id"].iloc[0]
    heldout = pd.DataFrame({"prompt_id": [tree], "instruction": ["x"], "reference": ["y"]})
    _, with_tree_out = _fit(oasst1_messages, c4_documents["text"].head(300), heldout)
    _, with_all = _fit(oasst1_messages, c4_documents["text"].head(300))
    counted = {
        name: sum(check[part]["assistant"] for part in ("fit_texts", "validation_texts"))
        for name, check in (("out", with_tree_out), ("all", with_all))
    }
    replies_in_tree = ((oasst1_messages["message_tree_id"] == tree) & (oasst1_messages["role"] == "assistant")).sum()
    assert counted["all"] - counted["out"] == replies_in_tree > 0


def test_too_few_texts_to_validate_stop_with_a_clear_error(oasst1_messages):
    with pytest.raises(ValueError, match="held-out texts of both kinds"):
        _fit(oasst1_messages, ["One page of text."])


def test_a_models_answers_are_described_with_intervals():
    detector = WebStyleDetector(log_ratios={"<url>": 2.0, "i": -1.0}, window_chars=500).to_dict()
    responses = pd.DataFrame(
        {
            "prompt_id": ["p1", "p2", "p3"],
            "instruction": ["How do I cook rice?", "Why is the sky blue?", "Name a prime."],
            "response": ["Cooking rice: I use water.", "See https://sky.example.com", "Seven."],
            "status": ["ok", "ok", "ok"],
            "truncated": [False, True, False],
        }
    )
    summary = style_summary(responses, detector, 200, 0)
    assert summary["web_style"] == pytest.approx((-1.0 + 2.0 + 0.0) / 3)
    assert summary["on_topic_opening"] == pytest.approx(1 / 3) and summary["stop_rate"] == pytest.approx(2 / 3)
    assert summary["web_style_ci_low"] <= summary["web_style"] <= summary["web_style_ci_high"]
