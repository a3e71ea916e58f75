"""Every prompt the method sends to a model, in one place.

Prompts are data: the pipelines turn rows into chats with the builders below and never write prompt
text of their own. The wording is this project's; the criteria, tags and output formats follow the
two papers (the README cites both).
"""

from __future__ import annotations

# --- Prompt format of base models (no chat template of their own) -------------------------------
# Plain-text role headers the base model can read as text, and the model's own end-of-text token to
# end every answer: a pretrained model already knows that token, while a new special token would
# start untrained and the model would not learn to stop. The last answer of a chat ends on that
# token and nothing after it, so the token that ends an answer in training is the token generation
# stops on. Set once on the base checkpoint (``base_model.chat_template``) and saved with every model.

BASE_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- message['content'] | trim + '\\n\\n' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '### User:\\n' + message['content'] | trim + '\\n\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '### Assistant:\\n' + message['content'] | trim + eos_token -}}"
    "{%- if not loop.last -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '### Assistant:\\n' -}}{%- endif -%}"
)

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


#: the request that PMI and IFD put before an answer to ask how likely it is by itself: a user turn
#: that names no topic, in the same chat format (an empty turn is refused everywhere as a bug)
TOPIC_FREE_INSTRUCTION = "Please respond."


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


# --- Self-curation (Humpback, table 19, in this project's words) --------------------------------
# One user turn, as the paper poses it: a framing sentence, the 5-point scale with every criterion,
# the output format, then the pair. Worked examples (``few_shot``) sit inside the same turn.

RATING_FRAMING = (
    "Below are a user's request and a candidate answer. Judge whether the answer is a good example of "
    "how an AI assistant should respond to the request, on this 5-point scale:"
)

RUBRIC = """1: The answer is incomplete, vague, off-topic or controversial, or it is not exactly what was asked. For example, content seems to be missing, a numbered list does not start at its beginning, or the first sentence repeats the user's question. Or it is written from another person's point of view with their personal experience (a blog post), or it looks like an answer from a forum. Or it contains promotional text, navigation text or other irrelevant content.
2: The answer addresses most of what was asked but does not answer the request directly; for example, it gives a high-level method instead of the exact solution.
3: The answer is helpful, complete and self-contained, but it is not written from an AI assistant's point of view: it reads like an excerpt of a blog post, a web page or search results, with personal experience or opinion, or mentions of a comments section or of sharing on social media.
4: The answer is written from an AI assistant's point of view and clearly focused on the request. It is complete, clear and comprehensive, well organised and self-contained, with nothing missing or irrelevant, in a helpful tone. It has minor room for improvement, such as being more concise or more focused.
5: A perfect answer from an AI assistant: written on purpose for this request, with no irrelevant sentence, high-quality content that shows expert knowledge, and very well written: logical, easy to follow, engaging and insightful."""

RATING_INSTRUCTIONS = "First explain your rating briefly. Then write the score on the last line as: Score: <1-5>"

RATING_TEMPLATE = """Request:
{instruction}

Answer:
{response}"""

SCORE_OPTIONS = ["1", "2", "3", "4", "5"]

#: the option-probability scorer opens the answer with this, so the next token is the score digit
SCORE_PREFIX = "Score: "

#: (instruction, response, reasoning, score): worked examples that teach small models the format
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


def rating_chat(instruction: str, response: str, scorer: str, few_shot: int = 0) -> list[dict[str, str]]:
    """A rating request as one user turn. The ``option_probabilities`` scorer also opens the
    assistant's answer with :data:`SCORE_PREFIX`, so the score is the very next token."""
    parts = [RATING_FRAMING, RUBRIC, RATING_INSTRUCTIONS]
    for number, (example_instruction, example_response, reasoning, score) in enumerate(RATING_EXAMPLES[:few_shot], 1):
        pair = RATING_TEMPLATE.format(instruction=example_instruction, response=example_response)
        parts.append(f"Example {number}:\n{pair}\n\n{reasoning}\nScore: {score}")
    parts.append(
        ("Now rate this pair.\n" if few_shot else "")
        + RATING_TEMPLATE.format(instruction=instruction, response=response)
    )
    chat = [{"role": "user", "content": "\n\n".join(parts)}]
    if scorer == "option_probabilities":
        chat.append({"role": "assistant", "content": SCORE_PREFIX})
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
