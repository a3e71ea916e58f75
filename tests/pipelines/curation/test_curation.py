import shutil

import numpy as np
import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.params import FORWARD_PASS_SCORERS
from humpback.pipelines.curation.controls import CONTROL_PAIR_COLUMNS, CONTROL_SCORE_COLUMNS
from humpback.pipelines.curation.nodes import (
    CuratorFailedError,
    base_rater_controls,
    build_training_pairs,
    curator_controls,
    score_candidates,
    score_with_every_scorer,
    scorer_controls_table,
    select_pairs,
    select_random_pairs,
    summarise_curator_controls,
)
from humpback.pipelines.curation.parsing import parse_score
from humpback.pipelines.curation.reports import curation_funnel, score_examples, score_histogram
from humpback.pipelines.curation.scoring import combined_score, ranking_column
from tests.conftest import HELDOUT_PAIRS, NO_SHARDS, params
from tests.scripts import scripted

M1_TRAINING = params("m1.training")  # the answers are scored as its training cuts them


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is relevant and clear.\nScore: 4", (4, "parsed")),
        ("**Score:** 5", (5, "parsed")),
        ("score: 3.", (3, "parsed")),
        ("I would rate this answer 2/5 because it rambles.", (2, "parsed")),
        ("Rating - 3 out of 5", (3, "parsed")),
        ("First I thought Score: 2, but on reflection Score: 5", (5, "parsed")),
        ("Reasoning ...\n4", (4, "parsed")),
        ("Score: 9", (None, "out_of_range")),
        ("Score: 3.5", (None, "out_of_range")),
        ("This answer is good but I will not give a number.", (None, "unparsed")),
        ("", (None, "unparsed")),
        (None, (None, "unparsed")),
        ("Score:", (None, "unparsed")),
    ],
)
def test_score_parser_on_messy_outputs(text, expected):
    assert parse_score(text) == expected


@pytest.fixture
def rated(web_sample) -> pd.DataFrame:
    """Candidates as curation reads them; every third answer is a GOOD one (the scripted rater's rule)."""
    responses = [("GOOD " if i % 3 == 0 else "") + text for i, text in enumerate(web_sample["text"])]
    return pd.DataFrame(
        {
            "doc_id": web_sample["doc_id"],
            "url": web_sample["url"],
            "response": responses,
            "raw_instruction": "x",
            "instruction": [f"Summarise zqx{i}." for i in range(len(web_sample))],
        }
    ).assign(original_response=lambda f: f["response"], rewrite_raw=None, rewrite_status="not_requested")


#: a curator check that passed; selection keeps its pick
PASSED = {"rater": "seed", "passed": True, "reason": None}
FAILED = {"rater": "seed", "passed": False, "reason": "AUC human vs mismatched 0.47 [0.31, 0.62]: lower bound < 0.70"}


def curation(scorer: str, **selection):
    return params("curation", scorer=scorer, selection=selection or {"method": "threshold", "threshold": 5})


GOOD_ROWS = [i % 3 == 0 for i in range(12)]


def test_option_probability_scorer_keeps_what_the_rater_scores_5(rated, tiny_model_dir, tmp_path):
    handle = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    generation = params("generation", shard_dir=str(tmp_path))
    scored = score_candidates(
        rated, handle, handle, scripted("Rater"), curation("option_probabilities"), generation, M1_TRAINING
    )

    assert scored["doc_id"].tolist() == rated["doc_id"].tolist() and (scored["scorer"] == "option_probabilities").all()
    assert scored["score"].tolist() == [5 if good else 1 for good in GOOD_ROWS]
    np.testing.assert_allclose(scored["option_mass"], 0.9 + 4 * 0.025)
    np.testing.assert_allclose(scored["p_5"], np.where(GOOD_ROWS, 0.9, 0.025))
    # expected score over the options (mass 1.0): 5·0.9 + (1+2+3+4)·0.025 = 4.75; 1·0.9 + (2+3+4+5)·0.025 = 1.25
    np.testing.assert_allclose(scored["expected_score"], np.where(GOOD_ROWS, 4.75, 1.25))
    assert (scored["score_status"] == "parsed").all() and (scored["rater"] == "seed").all()
    kept, summary = select_pairs(scored, PASSED, curation("option_probabilities"))
    assert kept["doc_id"].tolist() == rated.loc[GOOD_ROWS, "doc_id"].tolist() and summary["kept"] == 4


def test_generate_scorer_records_raw_text_and_parse_status(rated, tiny_model_dir):
    rated.loc[1, "response"] = "UNSURE " + rated.loc[1, "response"]
    model = CheckpointHandle(str(tiny_model_dir))
    scored = score_candidates(rated, model, model, scripted("Rater"), curation("generate"), NO_SHARDS, M1_TRAINING)

    assert scored["score_raw"].iloc[0] == "The answer is direct and complete.\nScore: 5"
    assert scored["score"].iloc[[0, 2, 3]].tolist() == [5, 1, 5]
    assert (scored.loc[1, "score_status"], pd.isna(scored.loc[1, "score"])) == ("unparsed", True)
    kept, summary = select_pairs(scored, PASSED, curation("generate"))
    assert summary["rated"] == 11 and kept["doc_id"].tolist() == rated.loc[GOOD_ROWS, "doc_id"].tolist()


def test_scorers_rate_each_answer_as_training_cuts_it(rated, tiny_model_dir):
    """A document longer than M1's max_length trains as its opening: its end is not scored. The rows
    keep the whole response (training cuts it the same way)."""
    from transformers import AutoTokenizer

    marked = rated.assign(response=rated["response"].str.removeprefix("GOOD ") + " GOOD")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = CheckpointHandle(str(tiny_model_dir))
    scored = score_candidates(
        marked, model, model, scripted("Rater"), curation("option_probabilities"), NO_SHARDS, M1_TRAINING
    )
    tokens = [len(tokenizer.encode(text, add_special_tokens=False)) for text in marked["response"]]
    longer = [n > M1_TRAINING.max_length for n in tokens]
    fitting = [n < M1_TRAINING.max_length - 40 for n in tokens]  # room for the instruction and template
    assert any(longer) and any(fitting)
    assert [score for score, long in zip(scored["score"], longer) if long] == [1] * sum(longer)
    assert [score for score, fits in zip(scored["score"], fitting) if fits] == [5] * sum(fitting)
    assert scored["response"].tolist() == marked["response"].tolist()
    whole = score_candidates(
        marked,
        model,
        model,
        scripted("Rater"),
        curation("option_probabilities"),
        NO_SHARDS,
        params("m1.training", max_length=100_000),
    )
    assert (whole["score"] == 5).all()


def test_a_pair_too_long_for_the_context_is_counted_not_fatal(rated, tiny_model_dir):
    rated.loc[2, "instruction"] = rated.loc[2, "instruction"] * 200  # answers are cut to train; instructions are not
    model = CheckpointHandle(str(tiny_model_dir))
    scored = score_candidates(
        rated,
        model,
        model,
        scripted("Rater", max_model_len=1024),
        curation("option_probabilities"),
        NO_SHARDS,
        M1_TRAINING,
    )
    assert scored["score_status"].tolist().count("prompt_too_long") == 1 and pd.isna(scored.loc[2, "score"])
    assert scored["score"].notna().sum() == len(rated) - 1


def scored_frame(scores, expected=None):
    frame = pd.DataFrame(
        {
            "instruction": [f"q{i}" for i in range(len(scores))],
            "response": "a",
            "scorer": "x",
            "score": pd.array(scores, dtype="Int64"),
            "score_status": "parsed",
        }
    )
    return frame.assign(expected_score=expected) if expected is not None else frame


def test_threshold_selection_and_nothing_selected(caplog):
    kept, summary = select_pairs(
        scored_frame([5, 4, None, 3, 5]), PASSED, curation("generate", method="threshold", threshold=5)
    )
    assert kept["instruction"].tolist() == ["q0", "q4"] and summary["kept"] == 2 and summary["rated"] == 4

    kept, summary = select_pairs(
        scored_frame([3, 2, None]), PASSED, curation("generate", method="threshold", threshold=4)
    )
    assert kept.empty and summary["nothing_selected"] is True
    assert "CURATION KEPT NOTHING" in caplog.text

    kept, summary = select_pairs(
        scored_frame([None, None]), PASSED, curation("generate", method="threshold", threshold=4)
    )
    assert kept.empty and summary["rated"] == 0


def test_top_fraction_uses_the_expected_score():
    frame = scored_frame([4, 4, 5, 1], expected=[3.6, 4.4, 4.9, 1.2])
    settings = curation("option_probabilities", method="top_fraction", top_fraction=0.5)
    kept, summary = select_pairs(frame, PASSED, settings)
    assert kept["instruction"].tolist() == ["q1", "q2"]  # original order kept; q0 has the same score as q1
    kept, _ = select_pairs(
        frame,
        PASSED,
        settings.model_copy(update={"selection": settings.selection.model_copy(update={"top_fraction": 0.1})}),
    )
    assert kept.empty  # floor(0.4) = 0


def test_training_pairs_and_reports(rated, web_sample):
    seed = pd.DataFrame({"instruction": ["s1", "s2"], "response": ["r1", "r2"], "source": "seed"})
    scored = scored_frame([5, 3, 5])
    curated, summary = select_pairs(scored, PASSED, curation("generate", method="threshold", threshold=5))
    pairs = build_training_pairs(seed, curated)
    assert pairs["source"].tolist() == ["seed", "seed", "augmented", "augmented"]

    candidates = rated.assign(status=["ok"] * (len(rated) - 2) + ["echo", "empty"])
    table, figure = curation_funnel(web_sample, candidates, rated, scored, curated, summary)
    assert table.set_index("stage").loc["kept", "count"] == 2
    assert table.set_index("stage").loc["dropped at augmentation: echo", "count"] == 1
    assert figure.data[0].x[-1] == 2
    nothing, _ = curation_funnel(web_sample, candidates, rated, scored, curated.iloc[:0], {"nothing_selected": True})
    assert "NOTHING KEPT" in nothing.set_index("stage").loc["kept", "note"]
    assert {trace.name for trace in score_histogram(scored).data} == {"x"}
    examples = score_examples(scored, per_score=1)
    assert examples["score"].tolist() == [3, 5]


#: ranked oasst1 prompts as ingestion makes them: the best-ranked reply answers, the worst does not
RANKED_PAIRS = pd.DataFrame(
    {
        "prompt_id": ["e", "f", "g"],
        "instruction": ["How tall is Mount Everest?", "Which planet is largest?", "Who wrote Hamlet?"],
        "chosen": [
            "Mount Everest is 8,849 metres tall.",
            "Jupiter is the largest planet of all.",
            "Shakespeare wrote Hamlet around 1600.",
        ],
        "rejected": ["I don't know, sorry.", "Look it up yourself.", "Nobody knows for sure."],
        "source": "oasst1",
    }
)


def controls_of(script: str, rated: pd.DataFrame, web_sample, model_dir, labels=None, base=None, **changes):
    """The curator controls of the curating model in ``model_dir`` (scoring the base model's
    likelihoods with ``base``, else the same model) and their summary."""
    rater = CheckpointHandle(str(model_dir), {"role": "seed"})
    settings = params("curation", **({"scorer": "option_probabilities", "compare_scorers": False} | changes))
    controls = curator_controls(
        HELDOUT_PAIRS,
        RANKED_PAIRS,
        web_sample,
        rated,
        NO_LABELS if labels is None else labels,
        rater,
        base or rater,
        scripted(script),
        settings,
        NO_SHARDS,
        M1_TRAINING,
    )
    return controls, summarise_curator_controls(controls, NO_BASE_RATINGS, rater, settings)


#: a run without hand labels (the optional input missing)
NO_LABELS = pd.DataFrame()
#: a run whose base model does not rate the controls (curation.base_rater_controls off)
NO_BASE_RATINGS = pd.DataFrame()


def hand_labels_of(web_sample: pd.DataFrame) -> pd.DataFrame:
    """Labels of pairs on the sample's documents: an instruction that names the document's first
    long word is a good pair (3), an instruction about nothing in it a bad one (1)."""
    first_words = [next(w for w in text.split() if len(w) > 5) for text in web_sample["text"]]
    good = [i % 2 == 0 for i in range(len(web_sample))]
    return pd.DataFrame(
        {
            "doc_id": [*web_sample["doc_id"], "not-in-this-run"],
            "instruction": [f"Tell me about {w}" if g else "Summarise zqx." for w, g in zip(first_words, good)]
            + ["Anything?"],
            "score": [3 if g else 1 for g in good] + [5],
        }
    )


def test_the_curator_is_measured_against_hand_labels(rated, web_sample, tiny_model_dir, caplog):
    labels = hand_labels_of(web_sample)
    controls, check = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir, labels)
    labelled = controls.loc[controls["control"] == "hand_labelled"]
    assert len(labelled) == len(web_sample)  # the label whose document the run lacks is dropped, and said
    assert "1 of 13 labelled documents are not among this run's web documents" in caplog.text
    # texts from the run's documents, as M1's training would cut them
    assert all(text.startswith(cut[:100]) for cut, text in zip(labelled["response"], web_sample["text"]))
    hand = next(r for r in check["by_scorer"] if r["control"] == "hand_labels")
    assert (hand["auc"], hand["good"], hand["items"], hand["base_rate"]) == (1.0, 6, 12, 0.5)
    assert hand["precision_kept"] == 1.0 and not hand["gates"]  # top 6 of 12 (top_fraction 0.5): all good
    _, at_chance = controls_of(
        "ConstantRater", rated, web_sample, tiny_model_dir, labels, gating_controls=["hand_labels"]
    )
    assert not at_chance["passed"] and "AUC human vs hand_labels 0.50" in at_chance["reason"]


def test_the_ranked_control_takes_as_many_ranked_prompts_as_asked(rated, web_sample, tiny_model_dir):
    controls, check = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir, ranked_control_prompts=1)
    ranked = controls.loc[controls["control"].str.startswith("ranked")]
    assert ranked["prompt_id"].nunique() == 1 and len(ranked) == 2  # its best and its worst reply
    assert check["control_pairs"] == 20 + 2 + 8


def test_a_curator_that_tells_answers_from_off_topic_text_passes_its_controls(rated, web_sample, tiny_model_dir):
    controls, check = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir)
    values = controls.groupby("control")["value"].apply(list).to_dict()
    assert values["human"] == pytest.approx([4.75] * 4) and values["mismatched"] == pytest.approx([1.25] * 4)
    assert check["auc_vs_mismatched"] == 1.0 and check["auc_vs_web"] >= 0.7 and check["passed"]
    # 4 held-out prompts × 5 answers, 3 ranked prompts × 2 replies, 8 of the run's candidates
    assert check["control_pairs"] == 20 + 6 + 8 and check["rated_share"] == 1.0
    assert check["auc_vs_ranked"] == 1.0 and check["auc_vs_form"] == 1.0  # "zqx" shares no word with them
    # cut and boilerplate answers mostly still share the request's words: this rater barely tells them
    # apart (one half, "The cornflower is", loses the word "flower")
    assert check["auc_vs_truncated"] == (3 * 0.5 + 1) / 4 and check["auc_vs_boilerplate"] == 0.5
    verdicts = {row["check"]: row["passed"] for row in check["rows"]}
    assert {check for check, passed in verdicts.items() if passed is not None} == {
        "relevance: own human answer above another prompt's (paired AUC)",
        "form: held-out human pairs above this run's candidates (AUC)",
        "probability on the score options (mean option mass)",
    }  # the gating controls and the option mass decide; the others report
    assert all(p for p in verdicts.values() if p is not None) and len(verdicts) == 6 + 2  # 6 controls, mass, spread


def test_a_control_that_does_not_gate_says_plainly_whether_it_sits_at_chance(tiny_model_dir):
    """The on-topic quality controls inform, never gate by default: their rows read against 0.5."""
    prompts = list(range(20))
    right = np.array([1.0] * 18 + [-1.0] * 2)  # the better pair higher on 18 of 20 prompts
    coin = np.array([1.0, -1.0] * 10)  # on half of them
    wrong = -right
    values = {"human": np.zeros(20), "mismatched": -right, "truncated": -coin, "boilerplate": -wrong}
    values |= {"ranked_best": coin, "ranked_worst": np.zeros(20), "web": np.full(20, -5.0)}
    check = summarise_curator_controls(
        long_controls(values, prompts),
        NO_BASE_RATINGS,
        CheckpointHandle(str(tiny_model_dir), {"role": "seed"}),
        params("curation"),
    )
    readings = {row["check"].split(" (")[0]: row["check"] for row in check["rows"] if row["passed"] is None}
    assert readings["quality: human answer above its first half"].endswith("at chance: its interval includes 0.5")
    assert readings["quality: oasst1's best-ranked reply above its worst"].endswith(
        "at chance: its interval includes 0.5"
    )
    assert readings["quality: human answer above it with web boilerplate"].endswith(
        "below chance: it prefers the worse pair"
    )
    assert readings["relevance: own human answer above a random web document"].endswith("above chance")


def test_controls_gate_only_where_a_parameter_asks(rated, web_sample, tiny_model_dir):
    """The on-topic quality controls are reported; they fail the curator only when named."""
    _, reported = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir)
    _, gated = controls_of(
        "RelevanceRater", rated, web_sample, tiny_model_dir, gating_controls=["mismatched", "truncated"]
    )
    assert reported["passed"] and not gated["passed"]
    assert gated["reason"].startswith("AUC human vs truncated 0.62 [0.50, ") and "mismatched" not in gated["reason"]


def test_a_curator_whose_scores_do_not_separate_pairs_fails_at_chance(rated, web_sample, tiny_model_dir, caplog):
    controls, check = controls_of("ConstantRater", rated, web_sample, tiny_model_dir)
    assert (check["auc_vs_mismatched"], check["auc_vs_form"], check["passed"]) == (0.5, 0.5, False)
    assert check["reason"] == (
        "AUC human vs mismatched 0.50 [0.50, 0.50]: lower bound < 0.70; AUC human vs form 0.50 [0.50, 0.50]: lower bound < 0.70"
    )
    assert "CURATOR FAILED ITS CONTROLS" in caplog.text


def long_controls(values: dict[str, np.ndarray], prompts) -> pd.DataFrame:
    """Control scores as curator_controls writes them, one option-scorer value per prompt and kind."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "prompt_id": prompts,
                    "control": kind,
                    "scorer": "option_probabilities",
                    "value": value,
                    "scored": True,
                    "option_mass": 1.0,
                }
            )
            for kind, value in values.items()
        ],
        ignore_index=True,
    )


RELEVANCE_GATES = {"gating_controls": ["mismatched", "web"]}


def test_controls_are_paired_per_prompt_so_prompt_difficulty_cannot_decide(tiny_model_dir):
    """A scorer whose scores mostly follow the prompt (a likelihood does: some prompts are easy) but
    that always ranks a prompt's own answer first: per prompt it is perfect, while a ROC AUC over the
    pooled scores sits near chance and failed it."""
    prompts = [f"p{i}" for i in range(20)]
    difficulty = np.linspace(0, 10, len(prompts))
    controls = long_controls({"human": difficulty + 0.5, "mismatched": difficulty, "web": difficulty + 0.2}, prompts)
    human, mismatched = difficulty + 0.5, difficulty
    pooled = ((human[:, None] > mismatched[None, :]) + 0.5 * (human[:, None] == mismatched[None, :])).mean()
    assert pooled < 0.6  # a ROC AUC over the pooled scores, the old measure: near chance
    check = summarise_curator_controls(
        controls,
        NO_BASE_RATINGS,
        CheckpointHandle(str(tiny_model_dir), {"role": "seed"}),
        params("curation", **RELEVANCE_GATES),
    )
    assert (check["auc_vs_mismatched"], check["auc_vs_mismatched_ci_low"], check["prompts_vs_mismatched"]) == (
        1.0,
        1.0,
        20,
    )
    assert check["auc_vs_web"] == 1.0 and check["passed"]


def test_a_control_passes_on_the_lower_bound_of_its_interval(tiny_model_dir):
    """15 of 20 prompts ranked right: 0.75 is above 0.7, its interval's lower bound is not."""
    wins = np.array([1.0] * 15 + [-1.0] * 5)
    controls = long_controls({"human": wins, "mismatched": np.zeros(20), "web": np.full(20, -5.0)}, list(range(20)))
    check = summarise_curator_controls(
        controls,
        NO_BASE_RATINGS,
        CheckpointHandle(str(tiny_model_dir), {"role": "seed"}),
        params("curation", **RELEVANCE_GATES),
    )
    assert check["auc_vs_mismatched"] == 0.75 and check["auc_vs_mismatched_ci_low"] < 0.7 and not check["passed"]
    assert "lower bound < 0.70" in check["reason"] and "web" not in check["reason"]


def test_a_generate_curator_that_often_gives_no_score_fails_on_its_parse_rate(rated, web_sample, tiny_model_dir):
    controls, check = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir, scorer="generate")
    assert set(controls.loc[controls["control"] == "web", "score_status"]) == {"unparsed"}  # long texts
    assert check["rated_share"] < 0.9 and check["auc_vs_mismatched"] == 1.0 and not check["passed"]
    assert f"rated {check['rated_share']:.0%} of control pairs < 90%" in check["reason"]


def test_random_selection_draws_as_many_as_curation_kept_from_the_pairs_it_rated():
    rng = np.random.default_rng(0)
    scores = [None if i % 7 == 0 else 1 + i % 5 for i in range(60)]
    frame = scored_frame(scores, expected=rng.uniform(1, 5, 60))
    curated, summary = select_pairs(
        frame, PASSED, curation("option_probabilities", method="top_fraction", top_fraction=0.2)
    )
    drawn, random_summary = select_random_pairs(frame, summary, curation("option_probabilities"))

    assert len(drawn) == summary["kept"] == random_summary["kept"] == 10  # floor(51 × 0.2)
    rated = set(frame.loc[frame["score"].notna(), "instruction"])
    assert set(drawn["instruction"]) <= rated and set(drawn["instruction"]) != set(curated["instruction"])
    again, _ = select_random_pairs(frame, summary, curation("option_probabilities"))
    other, _ = select_random_pairs(
        frame, summary, params("curation", scorer="option_probabilities", random_selection_seed=1)
    )
    assert again.equals(drawn) and not other.equals(drawn)  # the seed decides the draw
    assert random_summary["mean_expected_score_curated"] == summary["mean_expected_score_kept"] > 4.5
    assert random_summary["mean_expected_score_kept"] < summary["mean_expected_score_kept"]
    assert random_summary["method"] == "random" and random_summary["rated"] == 51


def test_a_rating_cut_at_max_new_tokens_gives_no_score(rated, tiny_model_dir):
    """'Score: 5' inside a cut rationale is not the rater's verdict: its last line never came."""
    model = CheckpointHandle(str(tiny_model_dir))
    scored = score_candidates(
        rated, model, model, scripted("StillWriting"), curation("generate"), NO_SHARDS, M1_TRAINING
    )
    assert (scored["score_status"] == "truncated").all() and scored["score"].isna().all()


@pytest.mark.parametrize(
    "action, kept, taken",
    [("warn", ["q0", "q4"], "kept_despite_failed_controls"), ("seed_only", [], "seed_only")],
)
def test_selection_reacts_to_a_curator_that_failed_its_controls(action, kept, taken, caplog):
    """Before, selection ignored the curator's verdict: a failed curator's pick trained M1 unsaid."""
    settings = curation("generate", method="threshold", threshold=5).model_copy(update={"on_failed_controls": action})
    selected, summary = select_pairs(scored_frame([5, 4, None, 3, 5]), FAILED, settings)
    assert selected["instruction"].tolist() == kept
    assert (summary["curator_passed"], summary["on_failed_controls"], summary["action"]) == (False, action, taken)
    assert "CURATOR FAILED ITS CONTROLS" in caplog.text


def test_a_failed_curator_stops_the_run_when_asked():
    settings = curation("generate", method="threshold", threshold=5).model_copy(update={"on_failed_controls": "stop"})
    with pytest.raises(
        CuratorFailedError, match=r"failed its controls: AUC human vs mismatched 0.47.*seed_only or warn"
    ):
        select_pairs(scored_frame([5, 4]), FAILED, settings)


def test_an_option_curator_that_puts_little_mass_on_the_score_options_fails(rated, web_sample, tiny_model_dir):
    """Before, its check read "share of control pairs rated: 1.0", true by construction."""
    _, check = controls_of("OffRubricRater", rated, web_sample, tiny_model_dir)
    assert check["option_mass"] == pytest.approx(0.05) and check["auc_vs_mismatched"] == 1.0
    assert not check["passed"] and "option mass 0.05 < 0.50" in check["reason"]
    assert check["rated_share"] == 1.0 and "rated" not in check["reason"]


@pytest.fixture
def curating_and_base(tiny_model_dir, tmp_path):
    """Handles of a curating model (folder seed_model) and the base model: the same tiny weights, told
    apart by the CuratingAndBase script through their folders' names."""
    seed_dir = tmp_path / "seed_model"
    shutil.copytree(tiny_model_dir, seed_dir)
    return CheckpointHandle(str(seed_dir), {"role": "seed"}), CheckpointHandle(str(tiny_model_dir), {"role": "base"})


#: instructions whose answers either share a content word with them (on topic) or do not
ON_TOPIC = pd.DataFrame(
    {
        "doc_id": [f"d{i}" for i in range(6)],
        "instruction": ["How do I bake bread?"] * 6,
        "response": [
            "Knead the bread dough and bake it for forty minutes.",
            "The weather in Lisbon is mild in winter.",
            "To bake it you need flour, water, salt and yeast.",
            "Our store opens at nine every morning.",
            "Bake bread at a high temperature for a crust.",
            "Click here to subscribe to the newsletter.",
        ],
    }
)


@pytest.mark.parametrize("scorer", ["pmi", "implicit_reward", "combined"])
def test_likelihood_scorers_keep_answers_the_curating_model_finds_likelier_after_their_instruction(
    scorer, curating_and_base
):
    rater, base = curating_and_base
    settings = curation(scorer, method="top_fraction", top_fraction=0.5)
    scored = score_candidates(ON_TOPIC, rater, base, scripted("CuratingAndBase"), settings, NO_SHARDS, M1_TRAINING)
    on_topic = [True, False, True, False, True, False]
    # the curating model: 1 nat a token on topic, 3 off; after the topic-free request 2; the base model 2
    np.testing.assert_allclose(scored["answer_nll"], np.where(on_topic, 1.0, 3.0))
    if scorer != "implicit_reward":
        np.testing.assert_allclose(scored["pmi"], np.where(on_topic, 1.0, -1.0))
        np.testing.assert_allclose(scored["ifd"], np.exp(np.where(on_topic, -1.0, 1.0)))
        # the IFD floor: an answer no likelier after its instruction is never kept
        assert scored["score_status"].tolist() == ["scored" if t else "ifd_not_below_1" for t in on_topic]
    if scorer != "pmi":
        np.testing.assert_allclose(scored["implicit_reward"], np.where(on_topic, 1.0, -1.0))
    assert scored.loc[on_topic, "score"].min() > scored.loc[[not t for t in on_topic], "score"].fillna(0).max()
    kept, summary = select_pairs(scored, PASSED, settings)
    assert set(kept["doc_id"]) <= {"d0", "d2", "d4"} and summary["kept"] >= 1
    assert f"mean_{scorer}_kept" in summary


def test_the_study_pool_scores_each_pair_as_the_configured_scorer_would(curating_and_base):
    """The pool runs the likelihood passes once for all three scorers; each scorer's rows must still
    equal what curating with that scorer alone gives."""
    rater, base = curating_and_base
    pool = score_with_every_scorer(
        ON_TOPIC, rater, base, scripted("CuratingAndBase"), curation("pmi"), NO_SHARDS, M1_TRAINING
    )
    assert pool.groupby("scorer").size().to_dict() == dict.fromkeys(FORWARD_PASS_SCORERS, len(ON_TOPIC))
    for scorer in FORWARD_PASS_SCORERS:
        alone = score_candidates(
            ON_TOPIC, rater, base, scripted("CuratingAndBase"), curation(scorer), NO_SHARDS, M1_TRAINING
        )
        rows = pool.loc[pool["scorer"] == scorer].reset_index(drop=True)
        assert rows["doc_id"].tolist() == alone["doc_id"].tolist()
        assert rows["score_status"].tolist() == alone["score_status"].tolist(), scorer
        assert rows["score"].astype("Int64").tolist() == alone["score"].astype("Int64").tolist(), scorer
        np.testing.assert_allclose(rows["value"], alone[ranking_column(scorer)].astype(float))


def test_the_combined_score_is_a_weighted_mean_of_percentile_ranks():
    values = pd.DataFrame({"pmi": [0.1, 0.3, 0.2, 0.4], "implicit_reward": [4.0, 1.0, 3.0, 2.0]})
    pmi_only = params("curation", combined_weights={"pmi": 1.0, "implicit_reward": 0.0})
    np.testing.assert_allclose(combined_score(values, pmi_only), [0.25, 0.75, 0.5, 1.0])
    even = params("curation", combined_weights={"pmi": 0.5, "implicit_reward": 0.5})
    np.testing.assert_allclose(combined_score(values, even), [0.625, 0.5, 0.625, 0.75])


def test_every_scorer_rates_the_same_controls_side_by_side(rated, web_sample, curating_and_base):
    rater, base = curating_and_base
    labels = hand_labels_of(web_sample)
    controls, check = controls_of(
        "CuratingAndBase", rated, web_sample, rater.path, labels, base, scorer="pmi", compare_scorers=True
    )
    assert controls["scorer"].unique().tolist() == ["pmi", "option_probabilities", "implicit_reward", "combined"]
    assert controls.groupby("scorer").size().nunique() == 1  # the same pairs for each
    table = scorer_controls_table(check).set_index(["scorer", "control"])
    assert len(table) == 4 * 7 and table["gates"].sum() == 4 * 2  # six controls and the hand labels
    for scorer in ("pmi", "option_probabilities", "implicit_reward", "combined"):
        assert table.loc[(scorer, "mismatched"), "auc"] == 1.0 and table.loc[(scorer, "ranked"), "auc"] == 1.0
    assert check["scorer"] == "pmi" and check["passed"] and check["rated_share"] == 1.0
    assert [row["check"] for row in check["rows"]][-2:] == [
        "share of control pairs scored (parse rate, or fitting the context)",
        "spread of its pmi (sd)",
    ]


def test_a_control_the_base_model_passes_too_is_labelled_checks_wiring(tiny_model_dir, caplog):
    """Relevance is told apart by the base model as well as by the curator (word overlap does it):
    that control checks wiring, and gating on it is warned about; the form control, which the base
    model fails, is the curator's own."""
    prompts = list(range(20))
    right = np.array([1.0] * 19 + [-1.0])
    curator = long_controls({"human": np.zeros(20), "mismatched": -right, "candidate": -right}, prompts)
    base = long_controls(
        {"human": np.zeros(20), "mismatched": -right, "candidate": np.array([1.0, -1.0] * 10)}, prompts
    )
    settings = params("curation", gating_controls=["mismatched", "form"])
    check = summarise_curator_controls(curator, base, CheckpointHandle(str(tiny_model_dir), {"role": "seed"}), settings)
    assert check["base_rater"] and check["checking_wiring"] == ["mismatched"]
    rows = {(row["model"], row["check"]): row for row in check["rows"]}
    relevance = "relevance: own human answer above another prompt's (paired AUC)"
    assert rows[("curator (seed)", f"{relevance}: checks wiring (the base model passes it too)")]["passed"]
    assert rows[("curator (base)", relevance)]["value"] == 0.95  # the base model's figure beside it
    form = "form: held-out human pairs above this run's candidates (AUC)"
    assert rows[("curator (seed)", form)]["passed"] and rows[("curator (base)", form)]["value"] < 0.7
    assert "curator control mismatched gates, but the base model passes it too" in caplog.text
    by_control = {r["control"]: r for r in check["by_scorer"]}
    assert by_control["mismatched"]["checks_wiring"] and not by_control["form"]["checks_wiring"]


def test_the_base_model_rates_the_same_control_pairs_only_when_asked(rated, web_sample, tiny_model_dir):
    base = CheckpointHandle(str(tiny_model_dir), {"role": "base"})
    inputs = (HELDOUT_PAIRS, RANKED_PAIRS, web_sample, rated, NO_LABELS, base, scripted("RelevanceRater"))
    off = base_rater_controls(*inputs, params("curation", base_rater_controls=False), NO_SHARDS, M1_TRAINING)
    assert off.empty and list(off.columns) == [*CONTROL_PAIR_COLUMNS, *CONTROL_SCORE_COLUMNS]
    settings = params("curation", base_rater_controls=True, scorer="option_probabilities", compare_scorers=False)
    on = base_rater_controls(*inputs, settings, NO_SHARDS, M1_TRAINING)
    curator, _ = controls_of("RelevanceRater", rated, web_sample, tiny_model_dir)
    assert on[["control", "instruction", "response"]].equals(curator[["control", "instruction", "response"]])
    assert on["scored"].all()
