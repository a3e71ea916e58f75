import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.pipelines.rewriting.nodes import rewrite_candidates, rewrite_selected
from humpback.pipelines.rewriting.parsing import parse_rewrite
from tests.conftest import NO_SHARDS, params
from tests.scripts import Rewriter, scripted

DRAFT = "Our shop sells BBQ sauce. Click here! Smoke brisket low and slow at 110 °C for ten hours."
GOOD = "Smoke the brisket low and slow, at about 110 °C, for around ten hours until it is tender."


@pytest.mark.parametrize(
    "raw, expected",
    [
        (f"Here you go:\n[RES]{GOOD}[/RES]", (GOOD, "rewritten")),
        (f"[res]\n{GOOD}\n[/res] trailing", (GOOD, "rewritten")),
        (GOOD, (DRAFT, "no_markers")),
        (f"[RES]{GOOD}", (DRAFT, "no_markers")),  # cut off before the closing marker
        ("[RES]   [/RES]", (DRAFT, "empty")),
        ("[RES]Yes.[/RES]", (DRAFT, "degenerate")),
        ("[RES]" + "Smoke it well. " * 10 + "[/RES]", (DRAFT, "degenerate")),
        (None, (DRAFT, "prompt_too_long")),
    ],
)
def test_rewrites_are_read_between_markers_or_the_draft_is_kept(raw, expected):
    assert parse_rewrite(raw, DRAFT, min_chars=20) == expected


@pytest.fixture
def candidates(web_sample) -> pd.DataFrame:
    """Six candidates, four usable; the first two are about BBQ (the scripted rewriter rewrites those)."""
    responses = web_sample["text"].head(6).tolist()
    responses[:2] = [DRAFT, DRAFT + " Brisket needs patience."]
    return pd.DataFrame(
        {
            "doc_id": web_sample["doc_id"].head(6),
            "url": "u",
            "response": responses,
            "raw_instruction": "r",
            "instruction": [f"Question {i}?" for i in range(6)],
            "status": ["ok", "ok", "ok", "ok", "echo", "empty"],
        }
    )


def rewriting(mode: str, model: str = "aligned", iteration2: str = "rewrite"):
    return params("rewriting", mode=mode, model=model, iteration2=iteration2)


NOWHERE = CheckpointHandle("/nonexistent")  # a model handle that fails if it is ever loaded
REWRITER = scripted("Rewriter")


def test_off_keeps_usable_candidates_unchanged(candidates):
    rated = rewrite_candidates(candidates, NOWHERE, NOWHERE, REWRITER, rewriting("off"), NO_SHARDS)
    assert len(rated) == 4 and "status" not in rated
    assert (rated["response"] == rated["original_response"]).all() and (
        rated["rewrite_status"] == "not_requested"
    ).all()
    selected = rated.head(2)
    assert rewrite_selected(selected, NOWHERE, NOWHERE, NOWHERE, REWRITER, rewriting("off"), NO_SHARDS) is selected


def test_self_before_curation_rewrites_every_usable_candidate(candidates, tiny_model_dir):
    model = CheckpointHandle(str(tiny_model_dir))
    rated = rewrite_candidates(candidates, model, model, REWRITER, rewriting("self_before_curation"), NO_SHARDS)
    assert rated["doc_id"].tolist() == candidates["doc_id"].head(4).tolist()
    assert rated["rewrite_status"].tolist() == ["rewritten", "rewritten", "no_markers", "no_markers"]
    assert rated["response"].head(2).eq(Rewriter.REWRITE).all()  # the rewrite replaces the draft
    assert rated["original_response"].tolist() == candidates["response"].head(4).tolist()
    assert rated["response"].iloc[2:].tolist() == candidates["response"].iloc[2:4].tolist()  # the draft stays
    assert rated["rewrite_raw"].iloc[2:].eq("I cannot rewrite this.").all()
    # before-curation mode leaves the kept pairs alone afterwards
    assert (
        rewrite_selected(rated, NOWHERE, NOWHERE, NOWHERE, REWRITER, rewriting("self_before_curation"), NO_SHARDS)
        is rated
    )


@pytest.mark.parametrize("iteration2", ["rewrite", "reuse"])
def test_iteration2_rewrites_with_m1_unless_told_to_reuse(candidates, tiny_model_dir, iteration2):
    """In iteration 2 the iteration's own model is M1; `reuse` keeps M0, whose shards iteration 1 left."""
    model = CheckpointHandle(str(tiny_model_dir))
    seed_model, m1 = (NOWHERE, model) if iteration2 == "rewrite" else (model, NOWHERE)
    settings = rewriting("self_before_curation", iteration2=iteration2)
    rated = rewrite_candidates(candidates, seed_model, m1, REWRITER, settings, NO_SHARDS)
    assert rated["rewrite_status"].eq("rewritten").sum() == 2
    with pytest.raises(OSError):  # the other handle is the one the parameter rules out
        rewrite_candidates(candidates, m1, seed_model, REWRITER, settings, NO_SHARDS)


@pytest.mark.parametrize("model", ["aligned", "folder"])
def test_after_curation_rewrites_only_kept_pairs_with_the_configured_model(candidates, tiny_model_dir, model):
    rated = rewrite_candidates(candidates, NOWHERE, NOWHERE, REWRITER, rewriting("after_curation"), NO_SHARDS)
    assert (rated["rewrite_status"] == "not_requested").all()  # nothing rewritten before rating
    kept = rated.iloc[[1, 2]]
    # every other handle points nowhere: the configured model must be the one used
    aligned = CheckpointHandle(str(tiny_model_dir)) if model == "aligned" else NOWHERE
    configured = "aligned" if model == "aligned" else str(tiny_model_dir)
    curated = rewrite_selected(
        kept, NOWHERE, NOWHERE, aligned, REWRITER, rewriting("after_curation", model=configured), NO_SHARDS
    )
    assert curated["rewrite_status"].tolist() == ["rewritten", "no_markers"]
    assert curated["response"].tolist() == [Rewriter.REWRITE, kept["response"].iloc[1]]
    assert curated["original_response"].tolist() == kept["response"].tolist()


def test_a_rewrite_cut_at_max_new_tokens_keeps_the_draft_and_says_so(candidates, tiny_model_dir):
    """A closing marker before the cut does not make a cut generation a finished rewrite."""
    model = CheckpointHandle(str(tiny_model_dir))
    rated = rewrite_candidates(
        candidates, model, model, scripted("StillWriting"), rewriting("self_before_curation"), NO_SHARDS
    )
    assert (rated["rewrite_status"] == "truncated").all()
    assert (rated["response"] == rated["original_response"]).all()
