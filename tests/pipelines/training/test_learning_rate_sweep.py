"""The learning-rate sweep: the forward models' rate is chosen on held-out seed pairs (never on the
evaluation prompts), each rate compared with the best pairwise over the same held-out pairs."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from humpback.datasets import CheckpointHandle
from humpback.params import LearningRateSweepParams
from humpback.pipelines.training.examples import HELDOUT
from humpback.pipelines.training.nodes import learning_rate_sweep_results, sweep_examples, sweep_learning_rates
from tests.conftest import HELDOUT_PAIRS
from tests.conftest import params as shipped


def sweep(**changes) -> LearningRateSweepParams:
    return shipped("learning_rate_sweep", **changes)


def training(**changes):
    return shipped("seed_model.training", **changes)


@pytest.fixture(scope="module")
def seed_pairs(oasst1_messages) -> pd.DataFrame:
    from humpback.data.oasst import select_seed_pairs

    pairs, _ = select_seed_pairs(oasst1_messages, ["en"], 0, 20_000, True, 24, 42)
    return pairs


def trainings_of(losses: np.ndarray, rates=(1e-5, 2e-5, 5e-5)) -> dict:
    return {"trainings": [{"learning_rate": rate, "heldout_losses": list(row)} for rate, row in zip(rates, losses)]}


def test_a_rate_worse_by_more_than_the_noise_is_flagged_and_one_within_it_is_not():
    noise = np.random.default_rng(0).normal(0, 0.3, size=32)
    base = 2.0 + noise
    jitter = np.random.default_rng(1).normal(0, 0.3, 32)
    jitter += 0.02 - jitter.mean()  # 0.02 worse on average, ±0.3 a pair
    losses = np.array([base + 0.2, base + jitter, base])  # 1e-5, 2e-5, 5e-5
    table, summary = learning_rate_sweep_results(trainings_of(losses), training(learning_rate=2e-5), sweep())

    assert summary["best_learning_rate"] == pytest.approx(5e-5)
    by_rate = table.set_index("learning_rate")
    assert by_rate.loc[1e-5, "worse_than_best"]  # 0.2 nats on every pair: far beyond the paired noise
    assert by_rate.loc[1e-5, "difference_from_best"] == pytest.approx(0.2, abs=0.03)
    assert by_rate.loc[2e-5, "difference_from_best"] == pytest.approx(0.02)  # worse on average, by less than it
    assert by_rate.loc[2e-5, "difference_from_best"] < by_rate.loc[2e-5, "detectable_difference"]  # can detect
    assert not by_rate.loc[2e-5, "worse_than_best"]
    assert not summary["configured_worse_than_best"] and summary["configured_in_sweep"]
    assert 0 < by_rate.loc[1e-5, "detectable_difference"] < 0.2
    assert summary["heldout_examples"] == 32
    assert summary["best_at_edge"] == "highest"  # 5e-5, the highest rate tried: a higher one may do better


def test_a_best_rate_inside_the_grid_is_not_at_its_edge():
    losses = np.array([[2.0, 2.1], [1.0, 1.1], [1.5, 1.6]])  # 1e-5, 2e-5 best, 5e-5
    _, summary = learning_rate_sweep_results(trainings_of(losses), training(), sweep())
    assert summary["best_at_edge"] is None


def test_a_configured_rate_outside_the_sweep_is_said_so():
    losses = np.array([[2.0, 2.1, 2.2], [1.0, 1.1, 1.2], [1.5, 1.6, 1.7]])
    table, summary = learning_rate_sweep_results(trainings_of(losses), training(learning_rate=3e-4), sweep())
    assert summary["best_learning_rate"] == pytest.approx(2e-5)
    assert not summary["configured_in_sweep"] and not summary["configured_worse_than_best"]
    assert table.loc[table["learning_rate"] == 2e-5, "difference_from_best"].item() == 0


def test_sweep_parameters_refuse_repeated_or_non_positive_rates():
    for rates in ([1e-5, 1e-5], [0.0, 1e-5], [1e-5]):
        with pytest.raises(ValidationError):
            sweep(learning_rates=rates)


def test_the_sweep_holds_out_seed_pairs_and_never_trains_on_an_evaluation_prompt(seed_pairs, tiny_model_dir):
    handle = CheckpointHandle(path=str(tiny_model_dir), metadata={"model_id": "tiny"})
    evaluation = pd.DataFrame({"instruction": [seed_pairs["instruction"].iloc[0]], "response": ["x"]})
    examples, funnel = sweep_examples(
        seed_pairs, handle, training(max_length=256), evaluation, shipped("decontamination"), sweep(heldout_examples=6)
    )
    assert (examples["split"] == HELDOUT).sum() == 6 and (examples["source"] == "seed").all()
    assert not examples["prompt"].map(str).str.contains(seed_pairs["instruction"].iloc[0], regex=False).any()
    assert funnel.loc[funnel["rule"] == "overlaps_evaluation_prompt", "dropped"].sum() >= 1


def test_the_sweep_prefers_the_rate_that_learns_in_process_and_launched_alike(seed_pairs, tiny_model_dir):
    handle = CheckpointHandle(path=str(tiny_model_dir), metadata={"model_id": "tiny"})
    block = training(max_length=256, max_steps=3, batch_size=4, per_device_train_batch_size=2, checkpoint_steps=None)
    params = sweep(learning_rates=[1e-7, 3e-3], heldout_examples=5)
    examples, _ = sweep_examples(seed_pairs, handle, block, HELDOUT_PAIRS, shipped("decontamination"), params)

    trainings = sweep_learning_rates(examples, handle, block, params)
    runs = trainings["trainings"]
    assert [run["learning_rate"] for run in runs] == [1e-7, 3e-3]
    assert all(len(run["heldout_losses"]) == 5 and run["steps"] == 3 for run in runs)
    # a rate of 1e-7 leaves the random model where it was: its held-out losses are the ones before
    assert np.mean(runs[0]["heldout_losses"]) == pytest.approx(runs[0]["heldout_loss_before"], rel=0.02)
    table, summary = learning_rate_sweep_results(trainings, block, params)
    assert summary["best_learning_rate"] == 3e-3
    assert table.set_index("learning_rate").loc[1e-7, "worse_than_best"]

    # the same sweep in two launched processes (the GPU environments launch their trainings)
    launched_block = block.model_copy(update={"launcher": "torchrun", "nproc_per_node": 2})
    launched = sweep_learning_rates(examples, handle, launched_block, params)["trainings"]
    assert [run["processes"] for run in launched] == [2, 2]
    for one, two in zip(runs, launched):
        np.testing.assert_allclose(two["heldout_losses"], one["heldout_losses"], rtol=2e-3)


def test_a_stopped_sweep_resumes_without_training_its_finished_rates_again(
    seed_pairs, tiny_model_dir, tmp_path, monkeypatch
):
    from humpback.pipelines.training import nodes

    handle = CheckpointHandle(path=str(tiny_model_dir), metadata={"model_id": "tiny"})
    block = training(max_length=256, max_steps=1, checkpoint_steps=50, checkpoint_dir=str(tmp_path / "training"))
    params = sweep(learning_rates=[1e-4, 1e-3], heldout_examples=2)
    examples, _ = sweep_examples(seed_pairs, handle, block, HELDOUT_PAIRS, shipped("decontamination"), params)
    trained, real_fit = [], nodes.fit_sft

    def fit(examples, path, settings, **options):
        if settings.learning_rate == 1e-3 and trained == [1e-4]:
            trained.append("stopped")
            raise KeyboardInterrupt  # the run is stopped during the second rate
        trained.append(settings.learning_rate)
        return real_fit(examples, path, settings, **options)

    monkeypatch.setattr(nodes, "fit_sft", fit)
    with pytest.raises(KeyboardInterrupt):
        sweep_learning_rates(examples, handle, block, params)
    first = sweep_learning_rates(examples, handle, block, params)["trainings"]

    assert trained == [1e-4, "stopped", 1e-3]  # the finished rate was read back, not trained again
    assert [run["learning_rate"] for run in first] == [1e-4, 1e-3] and len(first[0]["heldout_losses"]) == 2
    assert not list((tmp_path / "training").glob("*.summary.json"))  # a finished sweep leaves nothing behind
