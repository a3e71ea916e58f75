"""Training nodes: pairs → tagged SFT examples → a fine-tuned checkpoint with its loss curve."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle, ModelArtifacts
from humpback.engine.memory import release_free_memory
from humpback.llm import load_tokenizer
from humpback.params import DecontaminationParams, LearningRateSweepParams, TrainingParams
from humpback.pipelines.training.examples import build_examples
from humpback.pipelines.training.launch import launched_summary, train_launched
from humpback.pipelines.training.sft import checkpoint_folder, discard_checkpoints, fit_sft, train_sft
from humpback.reports.model_card import render_model_card
from humpback.reports.statistics import DETECTABLE_IN_STANDARD_ERRORS, bootstrap_ratio

logger = logging.getLogger(__name__)


def prepare_sft_examples(
    pairs: pd.DataFrame,
    base_model: CheckpointHandle,
    training: TrainingParams,
    evaluation_pairs: pd.DataFrame,
    decontamination: DecontaminationParams,
    seed_reserve_pairs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt/completion examples (decontaminated, tagged, fitted to the length limit, capped, a
    few held out) and the funnel of dropped rows.

    Args:
        pairs: instruction, response, source rows (seed pairs, or seed + curated pairs).
        base_model: the checkpoint to fine-tune; its tokenizer measures the examples.
        training: this model's ``training`` block.
        evaluation_pairs: the held-out prompts of the evaluation (``instruction`` column).
        decontamination: the overlap rule that keeps them out of training.
        seed_reserve_pairs: seed pairs beyond the seed set, held out in its place where there are
            enough (``ingestion.seed.reserve_pairs``), so every seed pair trains.
    """
    tokenizer = load_tokenizer(base_model.path)
    prompts = evaluation_pairs["instruction"].tolist()
    return build_examples(pairs, tokenizer, training, prompts, decontamination, seed_reserve_pairs)


def in_base_dtype(model, base_model: CheckpointHandle):
    """The trained model in its base model's dtype: ``bf16_mixed`` trains fp32 master weights, but a
    bf16 base gives a bf16 checkpoint (half the disk; the engines load bf16 anyway)."""
    import torch

    dtype = getattr(torch, str(base_model.metadata.get("dtype", "")), None)
    return model.to(dtype) if isinstance(dtype, torch.dtype) and dtype.is_floating_point else model


def train_model(
    examples: pd.DataFrame,
    base_model: CheckpointHandle,
    training: TrainingParams,
    curation_provenance: dict | None = None,
) -> tuple[ModelArtifacts, pd.DataFrame, dict]:
    """Fine-tune the base model on the examples.

    Returns:
        The checkpoint to save (metadata: training summary, hyper-parameters, curation provenance;
        a model card), the loss curve and the summary as a small report.
    """
    train = train_launched if training.launched else train_sft
    model, tokenizer, curve, summary = train(examples, base_model.path, training)
    discard_checkpoints(examples, base_model.path, training)
    model = in_base_dtype(model, base_model)
    metadata = {
        "role": training.role,
        "base_model": base_model.metadata.get("model_id", base_model.path),
        "base_model_licence": base_model.metadata.get("licence"),
        "base_model_weights": base_model.metadata.get("weights"),
        **{
            key: base_model.metadata[key]
            for key in ("prompt_format", "answer_end_tokens")
            if key in base_model.metadata
        },
        "training": summary,
        "hyperparameters": training.model_dump(mode="json"),
        "curation": curation_provenance,
    }
    card = render_model_card(metadata)
    return ModelArtifacts(model, tokenizer, metadata=metadata, files={"README.md": card}), curve, summary


def sweep_examples(
    pairs: pd.DataFrame,
    base_model: CheckpointHandle,
    training: TrainingParams,
    evaluation_pairs: pd.DataFrame,
    decontamination: DecontaminationParams,
    sweep: LearningRateSweepParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed model's examples for the learning-rate sweep, with ``sweep.heldout_examples`` seed
    pairs held out: the same pairs for every rate, and more than a training's own few, because the
    choice rests on them. Evaluation prompts stay out of training, as in every training."""
    block = training.model_copy(update={"heldout_examples": sweep.heldout_examples})
    return prepare_sft_examples(pairs, base_model, block, evaluation_pairs, decontamination)


def sweep_learning_rates(
    examples: pd.DataFrame, base_model: CheckpointHandle, training: TrainingParams, sweep: LearningRateSweepParams
) -> dict:
    """The seed model trained at each of the sweep's rates on the same examples, everything else as
    its block says (a launched training too). Each training's summary gains its rate and every
    held-out example's loss after it. The models are not kept: the sweep only chooses.

    A rerun of a stopped sweep resumes: each finished rate's summary waits beside the trainings'
    checkpoints (``checkpoint_dir``) until the whole sweep is done, and the rate in progress resumes
    from its last checkpoint."""
    trainings, waiting = [], []
    for number, rate in enumerate(sweep.learning_rates, 1):
        block = training.model_copy(update={"learning_rate": rate})
        folder = checkpoint_folder(examples, base_model.path, block)
        done = folder.with_name(f"{folder.name}.summary.json") if folder else None
        progress = f"learning-rate sweep: rate {rate:g} ({number} of {len(sweep.learning_rates)})"
        if done is not None and done.is_file():
            logger.info("%s finished before, read back", progress)
            summary = json.loads(done.read_text())
        else:
            logger.info(progress)
            summary = _train_for_heldout_losses(examples, base_model.path, block)
            if done is not None:
                done.parent.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps(summary))
        if done is not None:
            waiting.append(done)
        trainings.append({**summary, "learning_rate": rate})
    for done in waiting:
        done.unlink(missing_ok=True)
    return {"trainings": trainings}


def _train_for_heldout_losses(examples: pd.DataFrame, model_path: str, block: TrainingParams) -> dict:
    """One training of the sweep, in this process or launched: its summary with each held-out
    example's loss; the model and its checkpoints are let go."""
    if not block.launched:
        summary = fit_sft(examples, model_path, block, per_example_heldout=True)[2]  # the trainer is let go here
    else:
        summary = launched_summary(examples, model_path, block)
    discard_checkpoints(examples, model_path, block)
    release_free_memory()
    return summary


def learning_rate_sweep_results(
    trainings: dict, training: TrainingParams, sweep: LearningRateSweepParams
) -> tuple[pd.DataFrame, dict]:
    """The sweep's table and choice.

    Returns:
        One row per rate: the held-out seed loss after training (the mean over held-out examples of
        each one's loss per token) and its difference from the best rate's, paired over the
        examples, with a 95 % bootstrap interval and the smallest difference that comparison can
        detect (2.8 standard errors). The summary names the best rate, the configured one, and
        whether the configured rate is worse than the best beyond noise.
    """
    runs = trainings["trainings"]
    losses = np.array([run["heldout_losses"] for run in runs], dtype=float)  # rates × held-out examples
    if losses.ndim != 2 or losses.shape[1] < 2:
        raise ValueError("the learning-rate sweep needs at least two held-out seed pairs to compare rates")
    means = losses.mean(axis=1)
    best = int(np.argmin(means))
    rows = []
    for run, own in zip(runs, losses):
        differences = own - losses[best]
        difference, low, high = bootstrap_ratio(
            differences, np.ones_like(differences), sweep.bootstrap_samples, sweep.seed
        )
        standard_error = differences.std(ddof=1) / np.sqrt(len(differences))
        rows.append(
            {
                "learning_rate": run["learning_rate"],
                "heldout_loss": float(own.mean()),
                "heldout_loss_before": run.get("heldout_loss_before"),
                "difference_from_best": difference,
                "difference_ci_low": low,
                "difference_ci_high": high,
                "detectable_difference": float(DETECTABLE_IN_STANDARD_ERRORS * standard_error),
                "worse_than_best": bool(low > 0),
                "steps": run.get("steps"),
                "train_loss": run.get("train_loss"),
            }
        )
    table = pd.DataFrame(rows)
    configured = table.loc[np.isclose(table["learning_rate"], training.learning_rate)]
    summary = {
        "heldout_examples": int(losses.shape[1]),
        "best_learning_rate": float(table.loc[best, "learning_rate"]),
        "configured_learning_rate": training.learning_rate,
        "configured_in_sweep": not configured.empty,
        "configured_worse_than_best": bool(configured["worse_than_best"].any()),
        "rates_not_worse_than_best": table.loc[~table["worse_than_best"], "learning_rate"].tolist(),
        "best_at_edge": _edge(float(table.loc[best, "learning_rate"]), table["learning_rate"].tolist()),
    }
    if summary["best_at_edge"]:
        logger.warning(
            "learning-rate sweep: the best rate %g is the %s one tried; the best may lie beyond it: extend "
            "learning_rate_sweep.learning_rates past it",
            summary["best_learning_rate"],
            summary["best_at_edge"],
        )
    logger.info(
        "learning-rate sweep: best %g (held-out seed loss %.4f over %d pairs); configured %g %s",
        summary["best_learning_rate"],
        means[best],
        summary["heldout_examples"],
        training.learning_rate,
        "is worse beyond noise"
        if summary["configured_worse_than_best"]
        else ("is within noise of it" if summary["configured_in_sweep"] else "was not in the sweep"),
    )
    return table, summary


def _edge(best: float, rates: list[float]) -> str | None:
    """``lowest`` or ``highest`` when the best rate is at an end of the rates tried: the sweep then
    cannot tell whether a rate beyond it would do better."""
    if best == min(rates):
        return "lowest"
    if best == max(rates):
        return "highest"
    return None
