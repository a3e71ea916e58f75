"""Training mechanics on a tiny random base Llama (no chat template of its own, the project's prompt
format): masking, tags, length filter before the cap, held-out loss, dropout, precision, LoRA merge,
round trip, learning to stop, bad input."""

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from humpback.datasets import CheckpointHandle, ModelCheckpointDataset
from humpback.llm.base import chat_token_ids
from humpback.pipelines.training.examples import TrainingDataError, build_examples, cap_training_set
from humpback.pipelines.training.nodes import prepare_sft_examples, train_model
from humpback.pipelines.training.sft import build_trainer
from humpback.prompts import ASSISTANT_TAG, BACKWARD_SYSTEM, WEB_TAG
from tests.conftest import HELDOUT_PAIRS
from tests.conftest import params as shipped

TINY = dict(
    max_length=256,
    overlong="truncate",
    learning_rate=1e-3,
    batch_size=4,
    per_device_train_batch_size=4,
    max_steps=2,
    heldout_examples=2,
    precision="fp32",
)


def training(**changes):
    """M0's training block as the test environment ships it, with ``changes``."""
    return shipped("seed_model.training", **changes)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def examples_of(pairs, tokenizer, evaluation_prompts=(), reserve=None, **params):
    block = training(**{"max_length": 4096, "heldout_examples": 0, **params})
    return build_examples(pairs, tokenizer, block, evaluation_prompts, shipped("decontamination"), reserve)


@pytest.fixture(scope="module")
def pairs(oasst1_messages) -> pd.DataFrame:
    from humpback.data.oasst import select_seed_pairs

    seed, _ = select_seed_pairs(oasst1_messages, ["en"], 0, 20_000, True, 24, 42)
    augmented = seed.head(8).assign(
        source="augmented",
        instruction=lambda f: "Web: " + f["instruction"],
        response=lambda f: f["response"] + " (web)",
    )
    return pd.concat([seed, augmented], ignore_index=True)


def test_tags_follow_the_source_and_can_be_switched_off(pairs, tokenizer):
    examples, _ = examples_of(pairs, tokenizer)
    systems = examples["prompt"].map(lambda chat: chat[0]["content"])
    assert set(systems[examples["source"] == "seed"]) == {ASSISTANT_TAG}
    assert set(systems[examples["source"] == "augmented"]) == {WEB_TAG}

    untagged, _ = examples_of(pairs, tokenizer, use_tags=False)
    assert untagged["prompt"].map(lambda chat: [m["role"] for m in chat] == ["user"]).all()


def test_backward_direction_predicts_the_instruction(pairs, tokenizer):
    examples, _ = examples_of(pairs, tokenizer, direction="backward", use_tags=False)
    first = examples.iloc[0]
    assert first["prompt"][0]["content"] == BACKWARD_SYSTEM
    assert first["prompt"][1]["content"] == pairs.iloc[0]["response"].strip()
    assert first["completion"][0]["content"] == pairs.iloc[0]["instruction"].strip()


def test_cap_keeps_every_seed_pair_and_is_deterministic(pairs):
    capped, dropped = cap_training_set(pairs, max_examples=27, seed=3)
    again, _ = cap_training_set(pairs.sample(frac=1, random_state=0), max_examples=27, seed=3)
    assert len(capped) == 27 and dropped == len(pairs) - 27
    assert (capped["source"] == "seed").sum() == (pairs["source"] == "seed").sum()
    assert sorted(capped["instruction"]) == sorted(again["instruction"])


def test_bad_rows_are_counted_and_empty_sets_refused(pairs, tokenizer):
    broken = pd.concat(
        [
            pairs,
            pd.DataFrame(
                [
                    {"instruction": " ", "response": "x", "source": "seed"},
                    {"instruction": "q", "response": None, "source": "seed"},
                    {"instruction": "q", "response": "a", "source": "forum"},
                ]
            ),
        ],
        ignore_index=True,
    )
    examples, funnel = examples_of(broken, tokenizer)
    assert len(examples) == len(pairs)
    assert funnel.set_index("rule").loc[["empty_text", "unknown_source"], "dropped"].tolist() == [2, 1]
    with pytest.raises(TrainingDataError, match="no usable training pairs"):
        examples_of(pairs.iloc[:0], tokenizer)


def test_overlong_examples_are_dropped_or_truncated_before_the_cap(pairs, tokenizer):
    long = pairs.copy()
    augmented = long.index[long["source"] == "augmented"]
    long.loc[augmented[:4], "response"] = "tide " * 400  # 4 of the 8 web pairs far over the limit
    dropped, funnel = examples_of(long, tokenizer, max_length=128, overlong="drop")
    too_long = funnel.set_index("rule").loc["longer_than_128_tokens", "dropped"]
    assert too_long >= 4 and len(dropped) == len(pairs) - too_long

    cut, _ = examples_of(long, tokenizer, max_length=128, overlong="truncate")
    assert cut["truncated"].sum() >= 4
    lengths = [
        len(chat_token_ids(tokenizer, list(p) + list(c), False)) for p, c in zip(cut["prompt"], cut["completion"])
    ]
    assert max(lengths) <= 128 + 2  # re-tokenising decoded text may merge differently at the cut
    ends = [
        tokenizer.encode(tokenizer.apply_chat_template(list(p) + list(c), tokenize=False), add_special_tokens=False)[-1]
        for p, c in zip(cut["prompt"], cut["completion"])
    ]
    assert set(ends) == {tokenizer.eos_token_id}  # a cut answer still ends on the stop token


def test_backward_examples_are_cut_in_the_document_never_in_the_instruction(pairs, tokenizer):
    long = pairs.head(6).copy()
    long.loc[long.index[:3], "response"] = "The tide comes in. " * 300
    examples, funnel = examples_of(
        long, tokenizer, direction="backward", use_tags=False, max_length=128, overlong="truncate"
    )
    assert len(examples) == 6 and examples["truncated"].iloc[:3].all()  # (real answers over 128 tokens are cut too)
    assert examples["completion"].map(lambda c: c[0]["content"]).tolist() == long["instruction"].str.strip().tolist()
    documents = examples["prompt"].iloc[:3].map(lambda chat: chat[1]["content"])
    assert documents.map(
        lambda text: text.startswith("The tide comes in.") and len(text) < len("The tide comes in. " * 300)
    ).all()
    lengths = [
        len(chat_token_ids(tokenizer, list(p) + list(c), False))
        for p, c in zip(examples["prompt"], examples["completion"])
    ]
    assert max(lengths) <= 128


def test_cap_counts_usable_examples(pairs, tokenizer):
    """The over-long filter runs first: the cap never spends a place on an example it then drops."""
    cap = int((pairs["source"] == "seed").sum()) + 3
    long = pairs.copy()
    long.loc[long["source"] == "augmented", "response"] = ["tide " * 5000] * 3 + list(
        pairs.loc[pairs["source"] == "augmented", "response"]
    )[3:]
    examples, funnel = examples_of(long, tokenizer, overlong="drop", max_examples=cap)
    rules = funnel.set_index("rule")["dropped"]
    assert rules["longer_than_4096_tokens"] == 3 and rules["over_max_examples"] == 2
    assert len(examples) == cap and (examples["source"] == "augmented").sum() == 3  # 5 usable web pairs, 3 places


def test_heldout_pairs_are_seed_pairs_kept_out_of_training(pairs, tokenizer):
    examples, funnel = examples_of(pairs, tokenizer, heldout_examples=5)
    heldout = examples.loc[examples["split"] == "heldout"]
    assert len(heldout) == 5 and (heldout["source"] == "seed").all()
    assert funnel.set_index("rule").loc["held_out_for_loss", "dropped"] == 5
    again, _ = examples_of(pairs.sample(frac=1, random_state=1), tokenizer, heldout_examples=5)
    prompts = lambda frame: sorted(frame.loc[frame["split"] == "heldout", "prompt"].map(str))  # noqa: E731
    assert prompts(again) == prompts(examples)  # the same pairs, whatever the row order


def test_prompt_tokens_carry_no_loss_and_the_answer_ends_on_the_stop_token(pairs, tokenizer, tiny_model_dir, tmp_path):
    examples, _ = examples_of(pairs.head(6), tokenizer, max_length=TINY["max_length"], overlong="truncate")
    trainer, _ = build_trainer(examples, str(tiny_model_dir), training(**TINY), str(tmp_path))
    batch = next(iter(trainer.get_train_dataloader()))
    for row in range(batch["input_ids"].shape[0]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        real = batch["attention_mask"][row].bool()
        trained = (labels != -100) & real
        first = int(trained.nonzero()[0])
        # everything before the completion (system tag, user turn, assistant header) is masked
        assert tokenizer.decode(ids[:first]).endswith("### Assistant:\n")
        assert not (labels[:first] != -100).any()
        # the completion is learned up to the token generation stops on, which a whole answer ends with
        completion = ids[first:][real[first:]]
        text = tokenizer.decode(completion, skip_special_tokens=True).strip()
        assert trained[first:][real[first:]].all() and text in set(
            examples["completion"].map(lambda c: c[0]["content"])
        )
        cut = set(examples.loc[examples["truncated"], "completion"].map(lambda c: c[0]["content"]))
        assert (int(completion[-1]) == tokenizer.eos_token_id) is (text not in cut)


def test_dropout_is_set_where_the_model_is_built(pairs, tokenizer, tiny_model_dir, tmp_path):
    examples, _ = examples_of(pairs.head(4), tokenizer)
    trainer, _ = build_trainer(examples, str(tiny_model_dir), training(**TINY, dropout=0.1), str(tmp_path))
    attention = [module for name, module in trainer.model.named_modules() if name.endswith("self_attn")]
    assert attention and all(module.attention_dropout == 0.1 for module in attention)
    plain, _ = build_trainer(examples, str(tiny_model_dir), training(**TINY), str(tmp_path))
    assert all(m.attention_dropout == 0.0 for n, m in plain.model.named_modules() if n.endswith("self_attn"))


@pytest.mark.parametrize(
    ("precision", "dtype", "autocast"),
    [("bf16_mixed", torch.float32, True), ("bf16", torch.bfloat16, True), ("fp32", torch.float32, False)],
)
def test_precision_keeps_fp32_weights_unless_pure_bf16_is_asked(
    pairs, tokenizer, tiny_model_dir, tmp_path, precision, dtype, autocast
):
    examples, _ = examples_of(pairs.head(4), tokenizer)
    trainer, _ = build_trainer(
        examples, str(tiny_model_dir), training(**{**TINY, "precision": precision}), str(tmp_path)
    )
    assert next(trainer.model.parameters()).dtype == dtype and trainer.args.bf16 == autocast


def test_frozen_embeddings_are_not_trained(pairs, tokenizer, tiny_model_dir, tmp_path):
    examples, _ = examples_of(pairs.head(4), tokenizer)
    trainer, sizes = build_trainer(
        examples, str(tiny_model_dir), training(**TINY, train_embeddings=False), str(tmp_path)
    )
    embedding = trainer.model.get_input_embeddings().weight
    assert not embedding.requires_grad and trainer.model.get_output_embeddings().weight is embedding  # tied
    assert sizes["trainable_parameters"] == trainer.model.num_parameters() - embedding.numel()
    before = embedding.detach().clone()
    trainer.train()
    assert torch.equal(trainer.model.get_input_embeddings().weight, before)


def test_full_training_round_trip_lowers_heldout_loss_and_reloads(pairs, tiny_model_dir, tmp_path):
    params = training(**{**TINY, "role": "seed", "max_steps": None, "num_train_epochs": 2, "heldout_examples": 4})
    handle = CheckpointHandle(path=str(tiny_model_dir), metadata={"model_id": "tiny", "prompt_format": "project"})
    examples, _ = prepare_sft_examples(pairs, handle, params, HELDOUT_PAIRS, shipped("decontamination"))
    artifacts, curve, summary = train_model(examples, handle, params)

    # the budget is epochs over the data: 28 training pairs, batch 4 → 7 steps an epoch
    assert summary["steps"] == 14 and summary["epochs"] == 2 and curve["loss"].notna().all()
    assert summary["heldout_loss_after"] < summary["heldout_loss_before"]  # on 4 seed pairs it never saw
    assert summary["composition"] == {"seed": 20, "augmented": 8} and summary["examples"] == 28
    assert summary["heldout_examples"] == 4
    dataset = ModelCheckpointDataset(path=str(tmp_path / "seed_model"))
    dataset.save(artifacts)
    saved = dataset.load()
    assert saved.metadata["role"] == "seed" and saved.metadata["hyperparameters"]["num_train_epochs"] == 2
    assert saved.metadata["prompt_format"] == "project"
    reloaded = AutoModelForCausalLM.from_pretrained(saved.path)
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = any(not torch.equal(a, b) for a, b in zip(reloaded.parameters(), before.parameters()))
    assert changed


@pytest.mark.parametrize("launch", [{}, {"launcher": "torchrun", "nproc_per_node": 2}], ids=["in_process", "torchrun"])
def test_lora_saves_a_merged_plain_checkpoint(pairs, tiny_model_dir, tmp_path, launch):
    params = training(
        **{**TINY, "method": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "learning_rate": 1e-2, **launch}
    )
    examples, _ = prepare_sft_examples(
        pairs.head(8), CheckpointHandle(str(tiny_model_dir)), params, HELDOUT_PAIRS, shipped("decontamination")
    )
    artifacts, _, summary = train_model(examples, CheckpointHandle(str(tiny_model_dir)), params)

    assert summary["method"] == "lora"
    assert not any("lora" in name for name, _ in artifacts.model.named_parameters())
    ModelCheckpointDataset(path=str(tmp_path / "merged")).save(artifacts)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert set(merged.state_dict()) == set(base.state_dict())
    assert any(not torch.equal(merged.state_dict()[k], base.state_dict()[k]) for k in base.state_dict())


def test_paper_step_schedule():
    paper = shipped("m1.training", env="paper")
    assert paper.scheduled_steps(186) == 500
    assert paper.scheduled_steps(16_000) == 1200
    assert paper.scheduled_steps(100_000) == 1600
    assert paper.batch_size_for(186) == 8 and paper.batch_size_for(16_000) == 32
    cpu = training(max_steps=None, steps_by_size=[], num_train_epochs=2)
    assert cpu.scheduled_steps(28) is None and cpu.steps_for(28, 4) == 14  # epochs decide


def test_torchrun_launch_trains_on_two_processes_and_saves_the_same_kind_of_checkpoint(pairs, tiny_model_dir, tmp_path):
    params = training(
        **{**TINY, "role": "m1", "max_steps": 2, "overlong": "truncate", "launcher": "torchrun", "nproc_per_node": 2}
    )
    examples, _ = prepare_sft_examples(
        pairs, CheckpointHandle(str(tiny_model_dir)), params, HELDOUT_PAIRS, shipped("decontamination")
    )
    artifacts, curve, summary = train_model(examples, CheckpointHandle(str(tiny_model_dir)), params)

    assert summary["processes"] == 2 and summary["steps"] == 2 and len(curve) == 2
    assert summary["batch_size"] == 4  # 2 processes × 2 per device × 1 accumulation step
    peaks = summary["peak_rss_mib_by_rank"]  # host memory per process, rank 1 included
    assert list(peaks) == ["0", "1"] and all(mib > 100 for mib in peaks.values())
    dataset = ModelCheckpointDataset(path=str(tmp_path / "m1"))
    dataset.save(artifacts)
    assert dataset.load().metadata["hyperparameters"]["launcher"] == "torchrun"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m1")
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(reloaded.parameters(), before.parameters()))


def test_failed_launch_reports_the_processes_error(pairs, tiny_model_dir, tmp_path):
    from humpback.pipelines.training.launch import LaunchError

    params = training(**{**TINY, "launcher": "torchrun", "nproc_per_node": 2})
    examples, _ = prepare_sft_examples(
        pairs.head(4), CheckpointHandle(str(tiny_model_dir)), params, HELDOUT_PAIRS, shipped("decontamination")
    )
    with pytest.raises(LaunchError, match="launched training failed"):
        train_model(examples, CheckpointHandle(str(tmp_path / "no-model-here")), params)


def test_scoring_only_label_positions_gives_the_same_loss(pairs, tokenizer, tiny_model_dir, tmp_path):
    """On CPU the output layer sees only the positions with a label (a speed lever); same loss."""
    import trl.trainer.utils as trl_utils
    from trl.kernels import chunked_logprob

    examples, _ = examples_of(pairs.head(8), tokenizer, direction="backward", use_tags=False)
    trainer, _ = build_trainer(examples, str(tiny_model_dir), training(**TINY), str(tmp_path))
    batch = {k: v for k, v in next(iter(trainer.get_train_dataloader())).items()}
    with torch.no_grad():
        compact = trainer.compute_loss(trainer.model, dict(batch))
        patched, trl_utils._use_triton = trl_utils._use_triton, chunked_logprob._use_triton  # TRL's own CPU path
        try:
            every_position = trainer.compute_loss(trainer.model, dict(batch))
        finally:
            trl_utils._use_triton = patched
    assert patched(torch.device("cpu")) and not chunked_logprob._use_triton(torch.device("cpu"))
    torch.testing.assert_close(compact, every_position, rtol=1e-5, atol=1e-6)


def test_pairs_that_overlap_an_evaluation_prompt_are_dropped_and_counted(pairs, tokenizer):
    prompt = pairs["instruction"].iloc[12]  # a seed pair with no augmented copy
    evaluation = [prompt.upper() + "!", "Why do tides rise and fall?"]  # case and punctuation do not hide it
    examples, funnel = examples_of(pairs, tokenizer, evaluation)
    rules = funnel.set_index("rule")["dropped"]
    assert rules["overlaps_evaluation_prompt"] == 1 and len(examples) == len(pairs) - 1
    assert not examples["prompt"].map(lambda chat: prompt in chat[-1]["content"]).any()
    clean, funnel = examples_of(pairs, tokenizer, ["Name a blue flower."])
    assert funnel.set_index("rule")["dropped"]["overlaps_evaluation_prompt"] == 0 and len(clean) == len(pairs)


def test_contamination_overlap_is_containment_of_the_shorter_text():
    from humpback.data.dedup import contamination_overlap

    evaluation = ["Write a short poem about the sea at night, with rhymes and a calm mood please"]
    texts = [
        "Write a short poem about the sea at night, with rhymes",  # 11 words inside the prompt: 4 of 4 8-grams
        "Write a short poem about the mountains in winter without any rhymes at all",  # 5 words shared, no 8-gram
        "write a short poem",  # shorter than 8 words: matches only a text of exactly these words
    ]
    overlaps = contamination_overlap(texts, evaluation, size=8)
    assert overlaps.tolist() == [1.0, 0.0, 0.0]


def test_a_short_evaluation_prompt_inside_a_longer_instruction_is_contamination():
    from humpback.data.dedup import contamination_overlap

    evaluation = ["What is the capital of France?", "Hi there"]
    texts = [
        "Quick quiz for my class: what is the capital of France? Answer in one word.",  # contains the prompt
        "What is the capital of Spain? Answer in one word, then name its river.",  # similar, not the prompt
        "Hi there, can you tell me how the tides work on the Atlantic coast?",  # a 2-word greeting: too short
    ]
    overlaps = contamination_overlap(texts, evaluation, size=8, min_contained_words=4)
    assert overlaps.tolist() == [1.0, 0.0, 0.0]


def test_the_batch_size_rule_counts_the_training_set_before_the_held_out_pairs(
    pairs, tokenizer, tiny_model_dir, tmp_path
):
    """The paper: batch 32, or 8 under 3,000 examples. 3,200 seed pairs with 256 held out are still
    3,200 pairs: batch 32 (the rule scaled here: 8 under 10)."""
    examples, _ = examples_of(pairs.head(12), tokenizer, max_length=TINY["max_length"], heldout_examples=4)
    assert (examples["split"] == "train").sum() == 8 and len(examples) == 12
    params = training(**{**TINY, "batch_size": 4, "small_data_batch_size": 2, "small_data_threshold": 10})
    _, sizes = build_trainer(examples, str(tiny_model_dir), params, str(tmp_path))
    assert sizes["batch_size"] == 4


def test_a_cut_answer_ends_on_its_last_word_not_on_the_stop_token(pairs, tokenizer, tiny_model_dir, tmp_path):
    """44 % of seed answers are longer than the CPU default's max_length: cut, they must not teach
    the model to stop mid-sentence. Whole answers still end on the stop token."""
    examples, _ = examples_of(pairs.head(12), tokenizer, max_length=96, overlong="truncate")
    assert examples["truncated"].any() and not examples["truncated"].all()
    trainer, _ = build_trainer(examples, str(tiny_model_dir), training(**{**TINY, "max_length": 96}), str(tmp_path))
    for row in trainer.train_dataset:
        learned = [label for label in row["labels"] if label != -100]
        assert learned, "every example keeps some of its answer"
        assert (learned[-1] == tokenizer.eos_token_id) is (not row["truncated"]), row["truncated"]


def test_with_a_reserve_every_seed_pair_trains_and_the_held_out_loss_is_measured_outside_the_seed_set(
    oasst1_messages, tokenizer
):
    """The seeds' 3,200 pairs train whole: held-out examples come from the pairs after the cap
    (``ingestion.seed.reserve_pairs``), in the cap's own order, never from the seed set."""
    from humpback.pipelines.ingestion.nodes import build_seed_pairs

    seed_block = shipped("ingestion.seed", max_pairs=40, reserve_pairs=6, heldout_fraction=0.0)
    seed, funnel, reserve = build_seed_pairs(oasst1_messages, seed_block)
    without, _, nothing = build_seed_pairs(oasst1_messages, seed_block.model_copy(update={"reserve_pairs": 0}))
    assert len(seed) == 40 and len(reserve) == 6 and nothing.empty
    assert seed["prompt_message_id"].tolist() == without["prompt_message_id"].tolist()  # the same seed set
    assert not set(reserve["prompt_message_id"]) & set(seed["prompt_message_id"])
    assert funnel.set_index("rule").loc["reserved_for_heldout_loss", "dropped"] == 6

    examples, _ = examples_of(seed, tokenizer, heldout_examples=4, reserve=reserve)
    held = examples.loc[examples["split"] == "heldout"]
    assert (examples["split"] == "train").sum() == 40 and len(held) == 4
    completions = {chat[0]["content"] for chat in held["completion"]}
    assert completions <= set(reserve["response"].str.strip())

    short = examples_of(seed, tokenizer, heldout_examples=8, reserve=reserve)[0]  # too few: seed pairs as before
    assert (short["split"] == "train").sum() == 32
