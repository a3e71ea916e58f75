"""Self-curation: the iteration's own model scores every candidate; the best are kept.

Two kinds of scorer by parameter (``curation.scorer``):

- the paper's 5-point rubric prompt: ``generate`` asks for brief reasoning and ``Score: N`` on the
  last line and parses it robustly (failures are recorded, never fatal); ``option_probabilities``
  reads the distribution over "1".."5" as the next token in one forward pass and keeps the expected
  score and the argmax;
- likelihood scorers, teacher-forced log-probabilities of the answer tokens M1 would train on (end
  token left out), with no generation and no parsing: ``pmi`` (is the answer likelier after its
  instruction than after a request that names no topic? relevance), ``implicit_reward`` (is it
  likelier under the curating model than under the base model? the assistant's form) and
  ``combined`` (a weighted mean of their percentile ranks). Their ``score`` is the quintile (1–5).

Controls check every scorer on pairs whose order is known without labels, each a comparison of a
better pair with a worse one, paired per prompt where both come from one prompt. The nodes live
here; how a pair is scored is in :mod:`.scoring`, the control pairs and their results in
:mod:`.controls`.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.runner import run_model_task
from humpback.llm import LLMConfig
from humpback.params import (
    FORWARD_PASS_SCORERS,
    LIKELIHOOD_SCORERS,
    CurationParams,
    GenerationRunParams,
    RewritingParams,
    SelectionParams,
    TrainingParams,
)
from humpback.pipelines.curation.controls import (
    CONTROL_PAIR_COLUMNS,
    CONTROL_SCORE_COLUMNS,
    CONTROLS,
    compared_scorers,
    control_pairs,
    control_results,
)
from humpback.pipelines.curation.scoring import (
    as_trained,
    combined_score,
    likelihood_scores,
    quintile_scores,
    ranking_column,
    rating_task,
    score_by_likelihood,
)
from humpback.reports import health

logger = logging.getLogger(__name__)


def score_candidates(
    rated_candidates: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every candidate with its score by the configured scorer.

    Returns:
        The input columns plus ``scorer``, ``rater``, ``score`` (1–5 or missing), ``score_status``,
        and the scorer's own: ``score_raw`` (generate); ``p_1``..``p_5``, ``option_mass`` and
        ``expected_score`` (option_probabilities; probabilities renormalised over the five options);
        :func:`likelihood_scores`' columns and ``combined`` (likelihood scorers). ``base`` is read
        by the likelihood scorers only. Each scorer rates the answer as ``training`` will cut it
        (:func:`as_trained`); the rows keep the whole response, which training cuts alike.
    """
    rated = rated_candidates.assign(scorer=params.scorer, rater=rater.metadata.get("role", rater.path))
    scored_as_trained = as_trained(rated, base, llm, training, "curation")
    if params.scorer in LIKELIHOOD_SCORERS:
        scored = score_by_likelihood(scored_as_trained, rater, base, llm, params, generation)
    else:
        scored = run_model_task(rating_task(params), scored_as_trained, rater, llm, generation)
    return scored.assign(response=rated["response"].to_numpy())


def score_with_every_scorer(
    rated_candidates: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every candidate scored by each forward-pass scorer, whatever the configured one: one row per
    candidate and scorer with ``value`` (what orders pairs under it), ``score`` and ``score_status``
    (a pair the IFD floor sets aside has no score); for the curated-vs-random study. The likelihood
    passes run once, for all three likelihood scorers; every scorer rates the answer as ``training``
    cuts it (:func:`as_trained`), the rows keep the whole response."""
    rated = rated_candidates.reset_index(drop=True)
    columns = ["doc_id", "instruction", "response"]
    scored_as_trained = as_trained(rated, base, llm, training, "curation")
    values = likelihood_scores(scored_as_trained, rater, base, llm, generation, "curation", LIKELIHOOD_SCORERS)
    values["combined"] = combined_score(values, params)
    frames = []
    for scorer in FORWARD_PASS_SCORERS:
        if scorer in LIKELIHOOD_SCORERS:
            scored, value = quintile_scores(values, scorer, params), values[scorer]
        else:
            scored = run_model_task(rating_task(params, scorer=scorer), scored_as_trained, rater, llm, generation)
            value = scored[ranking_column(scorer)]
        scores = scored[["score", "score_status"]].reset_index(drop=True)
        frames.append(
            pd.concat([rated[columns], scores], axis=1).assign(scorer=scorer, value=value.astype(float).to_numpy())
        )
    return pd.concat(frames, ignore_index=True)[[*columns, "scorer", "score", "score_status", "value"]]


def curator_controls(
    heldout_pairs: pd.DataFrame,
    ranked_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    rated_candidates: pd.DataFrame,
    hand_labels: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every compared scorer's scores of the control pairs, scored exactly as the candidates are:
    one row per pair and scorer, with ``value`` (what orders pairs under that scorer), ``scored``,
    ``score_status`` and, for the option scorer, ``option_mass``. Each ``response`` is the answer as
    ``training`` cuts it, the text the scorers rated (:func:`as_trained`)."""
    pairs = control_pairs(heldout_pairs, ranked_pairs, web_documents, rated_candidates, hand_labels, params)
    pairs = as_trained(pairs, base, llm, training, "curation_controls")
    scorers = compared_scorers(params)
    by_scorer = {}
    likelihood = [scorer for scorer in scorers if scorer in LIKELIHOOD_SCORERS]
    if likelihood:
        values = likelihood_scores(pairs, rater, base, llm, generation, "curation_controls", tuple(likelihood))
        if "combined" in likelihood:
            values["combined"] = combined_score(values, params)
        for scorer in likelihood:
            by_scorer[scorer] = pairs.assign(
                scorer=scorer,
                value=values[scorer].to_numpy(),
                score_status=values["likelihood_status"].to_numpy(),
                option_mass=math.nan,
            )
    for scorer in (s for s in scorers if s not in LIKELIHOOD_SCORERS):
        rated = run_model_task(rating_task(params, "curation_controls", scorer), pairs, rater, llm, generation)
        by_scorer[scorer] = pairs.assign(
            scorer=scorer,
            value=rated[ranking_column(scorer)].astype(float).to_numpy(),
            score_status=rated["score_status"].to_numpy(),
            option_mass=rated["option_mass"].to_numpy() if "option_mass" in rated else math.nan,
        )
    controls = pd.concat([by_scorer[scorer] for scorer in scorers], ignore_index=True)
    controls["scored"] = controls["value"].notna()
    return controls[[*pairs.columns, *CONTROL_SCORE_COLUMNS]]


def base_rater_controls(
    heldout_pairs: pd.DataFrame,
    ranked_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    rated_candidates: pd.DataFrame,
    hand_labels: pd.DataFrame,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """The same control pairs rated by the base model (``curation.base_rater_controls``; no rows
    when off). The base model never learnt what an answer is: a control it passes too tells a
    working pipeline from a broken one, not a curator from an untrained one."""
    if not params.base_rater_controls:
        return pd.DataFrame(columns=[*CONTROL_PAIR_COLUMNS, *CONTROL_SCORE_COLUMNS])
    return curator_controls(
        heldout_pairs,
        ranked_pairs,
        web_documents,
        rated_candidates,
        hand_labels,
        base,
        base,
        llm,
        params,
        generation,
        training,
    )


def _base_rater_readings(results: list[dict], base_controls: pd.DataFrame, params: CurationParams) -> dict[str, dict]:
    """Each control's result with the base model as the rater, by control name (the configured
    scorer's), with whether the base model passes it: such a control only checks wiring."""
    if base_controls is None or base_controls.empty:
        return {}
    base = {r["control"]: r for r in control_results(base_controls, params) if r["scorer"] == params.scorer}
    for result in results:
        reading = base.get(result["control"]) if result["scorer"] == params.scorer else None
        if reading is not None:
            result |= {
                "base_auc": reading["auc"],
                "base_ci_low": reading["ci_low"],
                "base_ci_high": reading["ci_high"],
                "checks_wiring": reading["passed"],
            }
    return base


def summarise_curator_controls(
    controls: pd.DataFrame, base_controls: pd.DataFrame, rater: CheckpointHandle, params: CurationParams
) -> dict:
    """Whether the configured scorer ranks the better pair of each control above the worse one: the
    share of prompts where it does, with a bootstrap interval over prompts; the controls named in
    ``curation.gating_controls`` pass when the lower bound reaches ``curation.min_control_auc``, the
    others are reported. Also how much it could score (parse rate or option mass), the spread of its
    scores, and every compared scorer's results side by side (``by_scorer``). With the base model's
    ratings of the same pairs, each control is read beside the base model's figure, and one the base
    model passes too is labelled "checks wiring": it cannot tell a curator from an untrained model."""
    results = control_results(controls, params)
    base = _base_rater_readings(results, base_controls, params)
    own = controls.loc[controls["scorer"] == params.scorer]
    scored = own.loc[own["scored"]]
    check = {
        "rater": rater.metadata.get("role", rater.path),
        "scorer": params.scorer,
        "ranking": ranking_column(params.scorer),
        "control_pairs": len(own),
        "rated_share": float(own["scored"].mean()) if len(own) else math.nan,
        "score_spread": float(scored["value"].std()) if len(scored) > 1 else math.nan,
        "distinct_scores": int(scored["value"].nunique()),
        "min_control_auc": params.min_control_auc,
        "min_rated_share": params.min_rated_share,
        "gating_controls": list(params.gating_controls),
        "base_rater": bool(base),
        "checking_wiring": sorted(name for name, reading in base.items() if reading["passed"]),
        "by_scorer": results,
    }
    model, rows = f"curator ({check['rater']})", []
    for result in (r for r in results if r["scorer"] == params.scorer):
        name, share, low, high = result["control"], result["auc"], result["ci_low"], result["ci_high"]
        check |= {f"auc_vs_{name}": share, f"auc_vs_{name}_ci_low": low, f"auc_vs_{name}_ci_high": high}
        check[f"prompts_vs_{name}"] = result["items"]
        label = f"{result['what']} ({'paired AUC' if name in CONTROLS and CONTROLS[name].paired else 'AUC'})"
        if name in base:
            reading = base[name]
            check |= {f"base_auc_vs_{name}": reading["auc"]}
            rows.append(
                health.information(
                    "curator (base)", label, reading["auc"], low=reading["ci_low"], high=reading["ci_high"]
                )
            )
            if reading["passed"]:
                label += ": checks wiring (the base model passes it too)"
                if result["gates"]:
                    logger.warning(
                        "curator control %s gates, but the base model passes it too (%.2f [%.2f, %.2f]): it checks "
                        "wiring, not the curator; gate on controls the base model fails (curation.gating_controls)",
                        name,
                        reading["auc"],
                        reading["ci_low"],
                        reading["ci_high"],
                    )
        if not result["gates"]:
            reading = health.against_chance(low, high)
            logger.info(
                "curator control %s (reported, not gating): %.2f [%.2f, %.2f], %s", name, share, low, high, reading
            )
            rows.append(health.information(model, f"{label}: {reading}", share, low=low, high=high))
            continue
        rows.append(
            health.criterion(
                model,
                label,
                share,
                low=low,
                high=high,
                threshold=f"lower bound ≥ {params.min_control_auc}",
                passed=result["passed"],
                failure=f"AUC human vs {name} {share:.2f} [{low:.2f}, {high:.2f}]: lower bound < {params.min_control_auc:.2f}",
            )
        )
    if params.scorer == "option_probabilities":  # every pair gets a score: what can fail is the mass
        check["option_mass"] = float(own["option_mass"].mean()) if len(own) else math.nan
        rows.append(
            health.at_least(
                model,
                "probability on the score options (mean option mass)",
                check["option_mass"],
                params.min_option_mass,
                "option mass",
            )
        )
    else:
        rows.append(
            health.criterion(
                model,
                "share of control pairs scored (parse rate, or fitting the context)",
                check["rated_share"],
                threshold=f"≥ {params.min_rated_share}",
                passed=check["rated_share"] >= params.min_rated_share,
                failure=f"rated {check['rated_share']:.0%} of control pairs < {params.min_rated_share:.0%}",
            )
        )
    rows.append(health.information(model, f"spread of its {check['ranking']} (sd)", check["score_spread"]))
    check |= health.verdict(rows)
    if not check["passed"]:
        logger.warning("CURATOR FAILED ITS CONTROLS (%s): %s", check["rater"], check["reason"])
    return check


def scorer_controls_table(curator_check: dict) -> pd.DataFrame:
    """Every compared scorer's controls side by side, one row per scorer and control."""
    return pd.DataFrame(curator_check["by_scorer"])


class CuratorFailedError(RuntimeError):
    """The curator failed its controls and ``curation.on_failed_controls`` is ``stop``."""


def select_pairs(scored: pd.DataFrame, curator_check: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Keep pairs by score threshold (5 as in the paper, or 4) or the top fraction by score, unless
    the curator failed its controls: then ``curation.on_failed_controls`` decides (stop the run,
    keep nothing so the next model trains on the seed pairs, or keep the pick and say so).

    Returns:
        The kept pairs and a summary (with the curator's verdict and the action taken); when nothing
        is kept, the next model trains on the seed data alone and the summary and the log say so.
    """
    selection: SelectionParams = params.selection
    rated = scored.loc[scored["score"].notna()]
    ranking = ranking_column(params.scorer)
    if selection.method == "threshold":
        kept = rated.loc[rated["score"] >= selection.threshold]
    else:
        count = int(np.floor(len(rated) * selection.top_fraction))
        best = rated[ranking].astype(float).sort_values(ascending=False, kind="stable").index[:count]
        kept = rated.loc[best] if count else rated.iloc[:0]
    kept = kept.sort_index()
    passed, action = bool(curator_check.get("passed")), "kept"
    if not passed:
        reason = curator_check.get("reason")
        if params.on_failed_controls == "stop":
            raise CuratorFailedError(
                f"the curator ({curator_check.get('rater')}) failed its controls: {reason}. "
                "curation.on_failed_controls is `stop`; set it to seed_only or warn to go on."
            )
        if params.on_failed_controls == "seed_only":
            kept, action = kept.iloc[:0], "seed_only"
            logger.warning(
                "CURATOR FAILED ITS CONTROLS (%s): nothing kept, the next model trains on seed pairs", reason
            )
        else:
            action = "kept_despite_failed_controls"
            logger.warning("CURATOR FAILED ITS CONTROLS (%s): its pick is kept (on_failed_controls: warn)", reason)
    summary = {
        "method": selection.method,
        "threshold": selection.threshold if selection.method == "threshold" else None,
        "top_fraction": selection.top_fraction if selection.method == "top_fraction" else None,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        "curator_passed": passed,
        "on_failed_controls": params.on_failed_controls,
        "action": action,
    }
    if kept.empty:
        logger.warning(
            "CURATION KEPT NOTHING: 0 of %d rated candidates kept (%s, %s); the next model trains on seed data alone",
            len(rated),
            selection.method,
            action,
        )
    return kept.reset_index(drop=True), summary


def select_random_pairs(scored: pd.DataFrame, curated: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Curation's control: as many rated candidates as curation kept, drawn at random from the same
    pool. A model trained on them beside M1 asks whether the curator chose better than chance (the
    paper's quality-versus-quantity question); the mean scores of both samples say how differently
    they were chosen."""
    rated = scored.loc[scored["score"].notna()]
    kept = rated.sample(n=min(curated["kept"], len(rated)), random_state=params.random_selection_seed).sort_index()
    ranking = ranking_column(params.scorer)
    summary = {
        "method": "random",
        "threshold": None,
        "top_fraction": None,
        "seed": params.random_selection_seed,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        f"mean_{ranking}_curated": curated.get(f"mean_{ranking}_kept", math.nan),
        f"mean_{ranking}_rated": _mean(rated[ranking]),
    }
    return kept.reset_index(drop=True), summary


def _mean(values: pd.Series) -> float:
    return float(values.astype(float).mean()) if len(values) else math.nan


def build_training_pairs(seed_pairs: pd.DataFrame, curated_pairs: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs plus curated pairs, each tagged with its source for the system-prompt tags."""
    seed = seed_pairs[["instruction", "response"]].assign(source="seed")
    augmented = curated_pairs[["instruction", "response"]].assign(source="augmented")
    return pd.concat([seed, augmented], ignore_index=True)


def describe_curation(
    selection_summary: dict,
    curator_check: dict,
    web_documents: pd.DataFrame,
    candidates: pd.DataFrame,
    rater: CheckpointHandle,
    curation: CurationParams,
    rewriting: RewritingParams,
) -> dict:
    """How this iteration's training pairs were made, for the trained model's card and metadata."""
    return {
        "rater": rater.metadata.get("role", rater.path),
        "rater_weights_sha256": rater.metadata.get("weights_sha256"),
        "scorer": curation.scorer,
        "few_shot": curation.few_shot,
        "rewriting_mode": rewriting.mode,
        "rewriting_model": rewriting.model if rewriting.mode == "after_curation" else None,
        "documents": len(web_documents),
        "candidates": int((candidates["status"] == "ok").sum()),
        **{key: value for key, value in selection_summary.items() if key != "candidates"},
        "curator_check": curator_check,
    }
