import pytest
from kedro.pipeline import Pipeline
from kedro.validation.type_extractor import TypeExtractor
from pydantic import BaseModel

from humpback.params import PARAMETER_BLOCKS, ParameterError, validate_parameters
from humpback.pipeline_registry import register_pipelines
from tests.conftest import REPO_ROOT, load_params, params

ENVIRONMENTS = sorted(p.name for p in (REPO_ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("base", "local"))


def _models(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _models(field.annotation)


@pytest.mark.parametrize("block", sorted(PARAMETER_BLOCKS))
def test_conf_base_is_the_only_home_of_defaults(block):
    """No parameter model carries a default that could compete with conf/base."""
    for model in _models(PARAMETER_BLOCKS[block]):
        with_default = [name for name, field in model.model_fields.items() if not field.is_required()]
        assert not with_default, f"{model.__name__} has defaults for {with_default}: they belong in conf/base"


def _model_at(path: str) -> type[BaseModel] | None:
    """The model of the parameter at a dotted path (``m1.training``); None for a plain value."""
    head, *rest = path.split(".")
    model = PARAMETER_BLOCKS.get(head)
    for name in rest:
        field = model.model_fields.get(name) if model is not None else None
        model = field.annotation if field is not None and isinstance(field.annotation, type) else None
        model = model if model is not None and issubclass(model, BaseModel) else None
    return model


def test_every_parameter_block_a_node_reads_is_typed_so_kedro_hands_it_validated():
    """Kedro turns a typed ``params:`` input into an object of its model: every node that reads a
    block declares the block's model, so no node receives (and re-validates) a raw dictionary."""
    pipelines = register_pipelines()
    typed = TypeExtractor(pipelines).extract_types_from_pipelines()
    read = {
        name.removeprefix("params:") for p in pipelines.values() for name in p.inputs() if name.startswith("params:")
    }
    blocks = {path: _model_at(path) for path in read if _model_at(path) is not None}
    assert blocks, "no parameter blocks found"
    assert {path: typed.get(path) for path in blocks} == blocks
    untyped = [
        f"{node.name}: {name}"
        for p in pipelines.values()
        for node in p.nodes
        for name in node.inputs
        if name.startswith("params:")
        and _model_at(name.removeprefix("params:"))
        and name.removeprefix("params:") not in TypeExtractor({"one": Pipeline([node])}).extract_types_from_pipelines()
    ]
    assert not untyped, f"nodes that read a parameter block without its type: {untyped}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_parameters_are_valid(env):
    validated = validate_parameters(load_params(env))
    assert validated["ingestion"].web.min_chars == 600
    assert validated["ingestion"].web.boilerplate_keywords  # environments override values, not blocks
    assert validated["backward_model"].training.direction == "backward"


def test_every_problem_is_reported_at_once():
    params = load_params("base")
    params["ingestion"]["web"]["min_chars"] = 5000  # above max_chars
    params["ingestion"]["seed"]["rnak"] = 0  # typo
    params["base_model"]["source"] = "ftp"
    params["trainig"] = {}

    with pytest.raises(ParameterError) as error:
        validate_parameters(params)
    message = str(error.value)
    for expected in [
        "min_chars (5000) exceeds max_chars",
        "ingestion.seed.rnak",
        "base_model.source",
        "trainig: unknown",
    ]:
        assert expected in message


@pytest.mark.parametrize(
    ("env", "rewriting"), [("nothumpback_m1", "off"), ("nothumpback_m1_rw_f_8b", "self_before_curation")]
)
def test_seed_model_environments_render_prompts_for_a_base_model(env, rewriting, tiny_raw_model_dir, tmp_path):
    """The two seed models' settings, with the tiny template-less model standing in for the Llama
    base model (no Hub here): the project's prompt format, the eos as stop token, the paper's values."""
    from transformers import AutoTokenizer

    from humpback.datasets import ModelCheckpointDataset
    from humpback.llm.base import chat_token_ids
    from humpback.pipelines.base_model.nodes import materialise_base_model
    from humpback.prompts import forward_chat, rating_chat

    validated = validate_parameters(load_params(env))
    assert (
        validated["base_model"].name_or_path.startswith("meta-llama/Llama-3.")
        and validated["base_model"].source == "hub"
    )
    assert validated["rewriting"].mode == rewriting and validated["ingestion"].web.max_documents == 502_000
    training = validated["seed_model"].training
    assert (training.learning_rate, training.end_learning_rate, training.weight_decay, training.dropout) == (
        1e-5,
        9e-6,
        0.1,
        0.1,
    )
    assert training.max_examples == 16_000 and training.steps_by_size and training.precision == "bf16_mixed"
    assert validated["llm"].backend == "vllm" and validated["curation"].selection.threshold == 5

    stand_in = validated["base_model"].model_copy(
        update={"source": "local", "name_or_path": str(tiny_raw_model_dir), "dtype": "float32"}
    )
    artifacts = materialise_base_model(stand_in)
    ModelCheckpointDataset(path=str(tmp_path / "base")).save(artifacts)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    text = tokenizer.decode(chat_token_ids(tokenizer, forward_chat("Name a tide.", "assistant")))
    assert (
        text
        == f"{tokenizer.bos_token}Respond in the style of an AI assistant.\n\n### User:\nName a tide.\n\n### Assistant:\n"
    )
    rating = tokenizer.decode(chat_token_ids(tokenizer, rating_chat("Q?", "A.", validated["curation"].scorer)))
    assert rating.startswith(f"{tokenizer.bos_token}### User:\n") and rating.endswith("### Assistant:\n")
    assert artifacts.model.generation_config.eos_token_id == [tokenizer.eos_token_id]


GPU_ENVIRONMENTS = ("nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper")


@pytest.mark.parametrize("env", GPU_ENVIRONMENTS)
def test_gpu_environments_fine_tune_the_whole_model_on_the_papers_schedule(env):
    """Merged as a run sees them (conf/base's CPU values reach an environment that does not override
    them): every weight trains, embeddings and the tied output layer included, and the learning rate
    decays from 1e-5 to 9e-6 with no warm-up, as the seeds' models trained."""
    for model in ("backward_model", "seed_model", "m1", "m2"):
        training = params(f"{model}.training", env=env)
        assert training.method == "full" and training.train_embeddings, (env, model)
        assert (training.learning_rate, training.end_learning_rate, training.warmup_ratio) == (1e-5, 9e-6, 0.0)
        assert (training.weight_decay, training.dropout) == (0.1, 0.1)


@pytest.mark.parametrize("env", GPU_ENVIRONMENTS)
def test_gpu_environments_train_on_the_seeds_3200_pairs_with_held_out_pairs_from_outside(env):
    seed = params("ingestion.seed", env=env)
    assert seed.max_pairs == 3200
    for model in ("backward_model", "seed_model", "m1", "m2"):
        assert seed.reserve_pairs >= params(f"{model}.training", env=env).heldout_examples > 0


def test_one_line_of_conf_local_sets_the_precision_of_every_training(tmp_path):
    import shutil

    from humpback.params import project_parameters

    trainings = ("backward_model", "seed_model", "m1", "m2")
    shipped = project_parameters("offline", str(REPO_ROOT / "conf"))
    assert {shipped[name].training.precision for name in trainings} == {"auto"}
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf/local").mkdir()
    (tmp_path / "conf/local/globals.yml").write_text("training_precision: fp32\n")
    edited = project_parameters("local", str(tmp_path / "conf"))
    assert {edited[name].training.precision for name in trainings} == {"fp32"}


@pytest.mark.parametrize("env", ["nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"])
def test_gpu_environments_keep_every_ranked_prompt_in_the_curators_control(env):
    assert params("curation", env=env).ranked_control_prompts is None


@pytest.mark.parametrize("env", ["nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"])
def test_gpu_environments_write_instructions_to_the_end_token_as_the_paper(env):
    """The CPU default ends an instruction at its line's end; the GPU environments do not inherit it."""
    assert params("augmentation", env=env).sampling.stop == []
    assert params("augmentation", env="offline").sampling.stop == ["\n"]
