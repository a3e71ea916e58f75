"""Scripts for the scripted backend: models whose behaviour the tests know.

Each script reads the prompt as the model would see it (rendered with the tiny model's chat
template) and answers by a rule. ``scripted(...)`` gives the ``llm`` block that selects one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from humpback.prompts import TOPIC_FREE_INSTRUCTION
from tests.conftest import params

USER_TURN = re.compile(r"### User:\n(.*?)\n\n### Assistant:", re.DOTALL)


def scripted(script: str, **changes: Any):
    """The test environment's ``llm`` block with the scripted backend and ``tests.scripts:<script>``."""
    return params("llm", **{"backend": "scripted", "script": f"tests.scripts:{script}", **changes})


def user_turn(prompt: str) -> str:
    return USER_TURN.search(prompt).group(1)


def answer_in(prompt: str, label: str) -> str:
    """The text after ``label`` up to the next blank line (``Answer:``, ``First answer:``, …)."""
    return prompt.split(f"{label}:\n", 1)[1].split("\n\n", 1)[0]


def last_request(prompt: str) -> str:
    return prompt.rsplit("Request:\n", 1)[1].split("\n\n", 1)[0]


def last_answer(prompt: str) -> str:
    """The pair to rate comes after the worked examples: its answer is the last one."""
    return prompt.rsplit("Answer:\n", 1)[1]


class BackwardModel:
    """Asks about a document's topic when it mentions one it knows, else copies its first twelve
    words back (an echo): a backward model whose good and bad outputs are known."""

    def generate(self, prompt: str) -> str:
        document = user_turn(prompt)
        if "brisket" in document.lower():
            return "Sure! You can ask: How do I smoke a brisket?"
        return " ".join(document.split()[:12])


class Rewriter:
    """Rewrites answers that mention BBQ between the markers; answers others without them."""

    REWRITE = "Smoke the brisket low and slow, at about 110 °C, for around ten hours until it is tender."

    def generate(self, prompt: str) -> str:
        if "bbq" in prompt.lower():
            return f"Here is the answer.\n[RES]{self.REWRITE}[/RES]"
        return "I cannot rewrite this."


class Rater:
    """Scores an answer 5 when it contains GOOD, else 1, as option probabilities and as text."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        assert prompt.endswith("Score: "), "the score digit must be the next token"
        best = "5" if "GOOD" in last_answer(prompt) else "1"
        return [0.9 if option == best else 0.025 for option in options]

    def generate(self, prompt: str) -> str:
        answer = last_answer(prompt)
        if "GOOD" in answer:
            return "The answer is direct and complete.\nScore: 5"
        if "UNSURE" in answer:
            return "I cannot decide."
        return "It is advertising.\nScore: 1"


class Judge:
    """Prefers the answer that contains GOOD, wherever it is shown; with none or both, a tie."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        first, second = "GOOD" in answer_in(prompt, "First answer"), "GOOD" in answer_in(prompt, "Second answer")
        verdict = "1" if first and not second else "2" if second and not first else "0"
        return [0.8 if option == verdict else 0.1 for option in options]


class FirstAnswerJudge:
    """Always prefers the answer shown first: pure position bias."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        return [0.8 if option == "1" else 0.1 for option in options]


class SilentJudge:
    """Gives none of the verdict options any probability it can report (a server whose top tokens
    hold no digit): every prompt is not judged."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        return [float("nan")] * len(options)


class ReferenceScorer:
    """-1 nat per token for an answer containing GOOD, -3 otherwise."""

    def completion_logprobs(self, prompt: str, completion: str) -> float:
        return -1.0 if "GOOD" in completion else -3.0


class Counting:
    """Answers with the prompt's length and counts the prompts it was asked (cache tests)."""

    prompts: list[str] = []

    def generate(self, prompt: str) -> str:
        Counting.prompts.append(prompt)
        return f"Question about {len(prompt)} characters?"


class RelevanceJudge:
    """Prefers the answer that shares more words with the request, wherever it is shown: a judge
    that tells an answer to the question from an answer to another question."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        request = set(answer_in(prompt, "Request").lower().split())
        first = len(request & set(answer_in(prompt, "First answer").lower().split()))
        second = len(request & set(answer_in(prompt, "Second answer").lower().split()))
        verdict = "1" if first > second else "2" if second > first else "0"
        return [0.8 if option == verdict else 0.1 for option in options]


class RelevanceRater:
    """Rates 5 an answer that shares a content word with the request, else 1 (a curator that can
    tell an answer from an off-topic text); ``ConstantRater`` rates everything alike."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        request = {word for word in last_request(prompt).lower().split() if len(word) > 3}
        best = "5" if request & set(last_answer(prompt).lower().split()) else "1"
        return [0.9 if option == best else 0.025 for option in options]

    def generate(self, prompt: str) -> str:
        """The same rule in words, except that it gives no score for a long text (a web page)."""
        if len(last_answer(prompt).split()) > 40:
            return "This is a long text; I cannot say."
        best = self.option_probabilities(prompt, ["1", "5"])
        return "Score: 5" if best[1] > best[0] else "Score: 1"


class ConstantRater:
    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        return [0.2] * len(options)


class OffRubricRater:
    """Tells answers apart, but puts almost no probability on the score options (it would rather
    continue the text): its expected scores are renormalised noise."""

    def option_probabilities(self, prompt: str, options: list[str]) -> list[float]:
        return [probability / 20 for probability in RelevanceRater().option_probabilities(prompt, options)]


class TrainedBackward:
    """-1 nat per token of an instruction given its answer (a model that learnt the backward task)."""

    def completion_logprobs(self, prompt: str, completion: str) -> float:
        return -1.0


class UntrainedBackward:
    def completion_logprobs(self, prompt: str, completion: str) -> float:
        return -3.0


class DocumentTail:
    """Says the last words of the document it was given: what the backward model was shown."""

    def generate(self, prompt: str) -> str:
        return "Tail: " + " ".join(user_turn(prompt).split()[-6:])


class StillWriting:
    """Every answer is cut at max_new_tokens: a closing marker and a score come too late or not at all."""

    def generate(self, prompt: str) -> tuple[str, bool]:
        return "Here is a rewrite [RES]A long answer that goes on[/RES] Score: 5 and then more", True


def _shares_a_content_word(request: str, answer: str) -> bool:
    return bool({word for word in request.lower().split() if len(word) > 3} & set(answer.lower().split()))


class RelevanceLikelihood:
    """A curating model: an answer that shares a content word with its request costs 1 nat a token,
    one that does not 3, and any answer after the topic-free request 2 (so PMI is +1 or −1)."""

    def completion_logprobs(self, prompt: str, completion: str) -> float:
        request = user_turn(prompt)
        if request == TOPIC_FREE_INSTRUCTION:
            return -2.0
        return -1.0 if _shares_a_content_word(request, completion) else -3.0


class FlatLikelihood:
    """A model that ignores the request: 2 nats a token for every answer."""

    def completion_logprobs(self, prompt: str, completion: str) -> float:
        return -2.0


class CuratingAndBase:
    """The base model (its folder is named base_model) ignores the request; the curating model
    follows :class:`RelevanceLikelihood` and rates as :class:`RelevanceRater` does."""

    def for_model(self, model_path: str):
        return FlatLikelihood() if Path(model_path).name == "base_model" else CuratingRater()


class CuratingRater(RelevanceLikelihood, RelevanceRater):
    """Rubric and likelihood alike: every scorer of the curating model tells relevant answers apart."""


class DiscriminatingBackward:
    """A backward model that reads the answer: 1 nat a token for an instruction that shares a content
    word with the answer it follows, 3 for one that does not."""

    def completion_logprobs(self, prompt: str, completion: str) -> float:
        return -1.0 if _shares_a_content_word(completion, user_turn(prompt)) else -3.0
