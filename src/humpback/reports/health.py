"""What every method-health check is made of, for the stages that check a model's judgements.

A check is a list of rows in one shape: a *criterion* has a value, an interval, a threshold, its
verdict and the sentence that says why it failed; an *information* row only reports. The stage that
makes a check decides each verdict once, here; the method-health report lays the rows side by side
and never decides again. Controls also share one definition of an answer that does not answer.
"""

from __future__ import annotations

import math

import numpy as np

#: the columns of the method-health table (rows also carry ``failure``, the reason's sentence)
COLUMNS = ["model", "check", "value", "ci_low", "ci_high", "threshold", "passed"]


def criterion(
    model: str,
    check: str,
    value: float,
    *,
    passed: bool,
    threshold: str,
    failure: str,
    low: float = math.nan,
    high: float = math.nan,
) -> dict:
    """A row with a verdict; a NaN value never passes."""
    return {
        "model": model,
        "check": check,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "threshold": threshold,
        "passed": bool(passed) and not math.isnan(value),
        "failure": failure,
    }


def at_least(
    model: str, check: str, value: float, minimum: float, what: str, low: float = math.nan, high: float = math.nan
) -> dict:
    """A criterion that ``value`` reaches ``minimum``; its failure reads "<what> <value> < <minimum>"."""
    return criterion(
        model,
        check,
        value,
        low=low,
        high=high,
        threshold=f"≥ {minimum}",
        passed=value >= minimum,
        failure=f"{what} {value:.2f} < {minimum:.2f}",
    )


def at_most(model: str, check: str, value: float, maximum: float, what: str) -> dict:
    """A criterion that ``value`` stays within ``maximum``; its failure reads "<what> <value> > <maximum>"."""
    return criterion(
        model,
        check,
        value,
        threshold=f"≤ {maximum}",
        passed=value <= maximum,
        failure=f"{what} {value:.2f} > {maximum:.2f}",
    )


def information(model: str, check: str, value: float, low: float = math.nan, high: float = math.nan) -> dict:
    """A row that only reports (a spread, a position bias, a control that does not gate): no
    threshold, no verdict."""
    return {
        "model": model,
        "check": check,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "threshold": "",
        "passed": None,
        "failure": None,
    }


def against_chance(low: float, high: float, chance: float = 0.5) -> str:
    """How a share's interval reads against chance: a control that does not gate still says plainly
    whether the scorer told its pairs apart."""
    if math.isnan(low) or math.isnan(high):
        return "not measured"
    if low > chance:
        return "above chance"
    if high < chance:
        return "below chance: it prefers the worse pair"
    return f"at chance: its interval includes {chance:g}"


def verdict(rows: list[dict]) -> dict:
    """The check's rows, whether every criterion passed, and the reasons of those that did not."""
    failures = [row["failure"] for row in rows if row["passed"] is False]
    return {"rows": rows, "passed": not failures, "reason": "; ".join(failures) or None}


def mismatched(answers: np.ndarray) -> np.ndarray:
    """Each item's answer replaced by the next item's: a human answer that does not answer the request."""
    return np.roll(np.asarray(answers), 1)


#: lines a web page puts around its text (navigation, sharing, advertising): appended to a human
#: answer, they make an on-topic answer that no assistant would give
BOILERPLATE_LINES = (
    "Home | About Us | Blog | Contact | Privacy Policy",
    "Share this: Facebook Twitter Pinterest Email",
    "Subscribe to our newsletter and get 10% off your first order!",
    "Click here to shop our best-selling products. Free shipping on orders over $50.",
    "Related posts: 10 Tips You Need to Know | The Ultimate Guide | Read more »",
    "© 2024 All rights reserved. Terms of Use | Cookie Settings",
)


def cut_in_half(answer: str) -> str:
    """The first half of an answer's words: on topic, and stopping mid-thought."""
    words = answer.split(" ")
    return " ".join(words[: max(len(words) // 2, 1)])


def with_boilerplate(answer: str) -> str:
    """An answer followed by a web page's navigation and advertising lines."""
    return answer.rstrip() + "\n\n" + "\n".join(BOILERPLATE_LINES)
