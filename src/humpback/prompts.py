"""Every prompt the method sends to a model, in one place.

Prompts are data: the pipelines turn rows into chats with the builders below and never write prompt
text of their own. The wording is this project's; the criteria, tags and output formats follow the
two papers (see ``../shared/METHOD.md`` in the development workspace, and the README).
"""

from __future__ import annotations

from humpback.llm import Prompt

# --- System-prompt tags (Humpback, section 2.3): which kind of data an example came from ----------

#: seed (human-written) examples, and the tag used when the trained model answers users
ASSISTANT_TAG = "Respond in the style of an AI assistant."
#: augmented examples whose response came from a web document
WEB_TAG = "Respond using knowledge from web search."
TAGS = {"assistant": ASSISTANT_TAG, "web": WEB_TAG}

# --- Backward model M_yx: predict the instruction a response answers ------------------------------

BACKWARD_SYSTEM = (
    "You are given an answer. Write the single request or question from a user that this answer "
    "responds to. Output only the request."
)


def forward_chat(instruction: str, tag: str | None = None) -> list[dict[str, str]]:
    """An instruction as a user turn, optionally under a system-prompt tag."""
    chat = [{"role": "system", "content": TAGS[tag]}] if tag else []
    return chat + [{"role": "user", "content": instruction}]


def backward_chat(response: str) -> list[dict[str, str]]:
    """A response as the backward model's input; its completion is the instruction."""
    return [{"role": "system", "content": BACKWARD_SYSTEM}, {"role": "user", "content": response}]


# --- Rewriting (back-and-forth translation): improve a draft without adding facts -----------------

REWRITE_OPEN, REWRITE_CLOSE = "[RES]", "[/RES]"

REWRITE_TEMPLATE = """Below is a user's request and a draft answer taken from a web page.
Rewrite the draft into a high-quality answer to the request, written as an AI assistant would write it.
- Stay as close to the draft as you can; copy its sentences where they already work.
- Keep only what answers the request: drop navigation text, advertising and personal asides.
- Do not add facts that are not in the draft.
Put the rewritten answer between {open} and {close}.

Request:
{instruction}

Draft answer:
{response}"""


def rewrite_chat(instruction: str, response: str) -> list[dict[str, str]]:
    content = REWRITE_TEMPLATE.format(
        open=REWRITE_OPEN, close=REWRITE_CLOSE, instruction=instruction, response=response
    )
    return [{"role": "user", "content": content}]


# --- Self-curation rubric (Humpback, table 19, in this project's words) ---------------------------

RUBRIC = """Rate how well the answer responds to the user's request, on a scale of 1 to 5:
1: The answer is incomplete, vague, off-topic, controversial, or not what was asked. It may read like a personal blog or forum post, or contain promotion or navigation text.
2: The answer addresses most of the request but not directly, for example it describes a way to find the solution instead of giving it.
3: The answer is helpful and complete, but it is not written as an AI assistant would write it: it reads like an excerpt of a web page or blog.
4: The answer is written as an AI assistant would write it: complete, clear, well organised, with small room for improvement such as being more concise or focused.
5: A perfect assistant answer: focused on the request, expert, well written, with nothing irrelevant."""

RATING_INSTRUCTIONS = {
    "generate": "First explain your rating in one or two sentences. Then write the score on the last line as: Score: <1-5>",
    "option_probabilities": "Reply with the score only, a single digit from 1 to 5.",
}

RATING_TEMPLATE = """Request:
{instruction}

Answer:
{response}"""

SCORE_OPTIONS = ["1", "2", "3", "4", "5"]

#: (instruction, response, reasoning, score): few-shot turns that teach small models the format
RATING_EXAMPLES = [
    (
        "How do I boil an egg?",
        "Best egg timers of 2019! Click here to shop our deals. Subscribe to our newsletter.",
        "The answer is advertising and does not explain how to boil an egg.",
        1,
    ),
    (
        "What causes tides?",
        "Tides are caused mainly by the Moon's gravity pulling on the oceans, with a smaller pull from the "
        "Sun. As the Earth rotates, most coasts pass through two bulges of water a day, giving two high "
        "and two low tides.",
        "The answer is direct, correct, complete and written as an assistant would write it.",
        5,
    ),
    (
        "Can you recommend a hiking trail near Missoula?",
        "We hiked the Rattlesnake trail last weekend with the kids and our dog Max. The weather was great "
        "and we stopped for ice cream on the way home! More photos on my blog.",
        "It mentions a trail but reads like a personal blog post rather than a recommendation.",
        2,
    ),
]


def rating_chat(instruction: str, response: str, scorer: str, few_shot: int = 0) -> Prompt:
    """A rating request: the rubric once as the system turn, then ``few_shot`` worked examples as
    earlier turns. Every prompt starts with the same tokens, which backends can cache."""
    chat = [{"role": "system", "content": f"{RUBRIC}\n\n{RATING_INSTRUCTIONS[scorer]}"}]
    for example_instruction, example_response, reasoning, score in RATING_EXAMPLES[:few_shot]:
        chat.append({"role": "user", "content": RATING_TEMPLATE.format(instruction=example_instruction, response=example_response)})
        answer = f"{reasoning}\nScore: {score}" if scorer == "generate" else str(score)
        chat.append({"role": "assistant", "content": answer})
    chat.append({"role": "user", "content": RATING_TEMPLATE.format(instruction=instruction, response=response)})
    return chat


# --- Evaluation: pairwise judgement of two answers (ties allowed) ---------------------------------

JUDGE_SYSTEM = """You compare two answers to the same user request. Prefer the answer that is more helpful, correct, relevant and clearly written, as a good AI assistant would answer. Length alone is not a reason to prefer an answer.
Reply with a single digit: 1 if the first answer is better, 2 if the second answer is better, 0 if they are equally good."""

JUDGE_TEMPLATE = """Request:
{instruction}

First answer:
{first}

Second answer:
{second}"""

#: judge verdicts as the next token: first better, second better, tie
JUDGE_OPTIONS = ["1", "2", "0"]


def judge_chat(instruction: str, first: str, second: str) -> list[dict[str, str]]:
    """A pairwise judgement request; callers ask twice with the answers swapped."""
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_TEMPLATE.format(instruction=instruction, first=first, second=second)},
    ]
