"""Evaluation: held-out reference NLL, responses, pairwise judgements, comparison tables, model cards."""

from humpback.pipelines.evaluation.pipeline import evaluation_pipeline

__all__ = ["evaluation_pipeline"]
