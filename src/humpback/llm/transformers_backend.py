"""transformers backend: the CPU default, batched by a token budget, sorted by length."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator

import numpy as np
import torch

from humpback.llm.base import Generation, LanguageModel, SamplingConfig
from humpback.llm.config import LLMConfig
from humpback.llm.platform import auto_dtype
from humpback.llm.progress import TokenProgress
from humpback.llm.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)


def length_sorted_batches(
    lengths: list[int], reserve: int, token_budget: int, max_batch_size: int
) -> Iterator[list[int]]:
    """Indices grouped longest first so each batch pads little and fits ``token_budget`` tokens.

    A batch's padded size is (longest prompt + ``reserve``) × batch size; a prompt alone over the
    budget still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        width = lengths[batch[0]] + reserve if batch else lengths[index] + reserve
        if batch and (len(batch) + 1 > max_batch_size or width * (len(batch) + 1) > token_budget):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


class PerRequestSampler:
    """A logits processor that samples each row's next token from its own generator, seeded by its
    request, and leaves only that token for greedy decoding to take.

    transformers' own sampler draws every row from one global generator, so a request's text would
    depend on which requests share its batch: adding documents to a run would rewrite the others'
    instructions. Here a request writes the same text alone or in any batch, as with vLLM's
    per-request seeds. Temperature and nucleus (top-p) sampling, as ``SamplingConfig`` says."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        self.seeds = seeds
        self.generators: list[torch.Generator] = []
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.generators:  # made on the first step, on the device the logits are on
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        tokens = torch.cat([torch.multinomial(row, 1, generator=g) for row, g in zip(probs, self.generators)])
        return torch.full_like(scores, -torch.inf).scatter_(1, tokens[:, None], 0.0)


class TransformersLanguageModel(LanguageModel):
    #: shorter shared prefixes are not worth a separate forward pass
    MIN_SHARED_PREFIX = 32

    def __init__(self, config: LLMConfig, model_path: str) -> None:
        super().__init__(config, model_path)
        from transformers import AutoModelForCausalLM

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(config.num_threads or len(os.sched_getaffinity(0)))
        self._tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code, padding_side="left")
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.dtype = getattr(torch, auto_dtype() if config.dtype == "auto" else config.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=self.dtype, trust_remote_code=config.trust_remote_code
        ).to(self.device)
        self.model.eval()
        logger.info("transformers backend: %s on %s (%s)", model_path, self.device, self.dtype)

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def context_length(self) -> int:
        own = self.model.config.max_position_embeddings  # never more than the model was built for
        return min(self.config.max_model_len or own, own)

    def _pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, sequences))
        pad = self._tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=self.device)
        return input_ids, mask

    def _batches(self, prompt_ids: list[list[int]], reserve: int) -> Iterator[list[int]]:
        return length_sorted_batches(
            [len(ids) for ids in prompt_ids], reserve, self.config.batch_token_budget, self.config.max_batch_size
        )

    @torch.inference_mode()
    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        sample = sampling.temperature > 0
        options = dict(
            do_sample=False,  # sampling is PerRequestSampler's; greedy decoding takes the token it drew
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self._tokenizer.pad_token_id,
            eos_token_id=self.stop_token_ids,
            temperature=None,  # the model's generation_config sampling defaults do not apply
            top_p=None,
            top_k=None,
        )
        if sampling.stop:
            options.update(stop_strings=sampling.stop, tokenizer=self._tokenizer)
        texts: list[Generation] = [Generation("", False)] * len(prompt_ids)
        stops = set(self.stop_token_ids)
        progress = TokenProgress(len(prompt_ids), "generate", self.config.show_progress)
        for batch in self._batches(prompt_ids, sampling.max_new_tokens):
            input_ids, mask = self._pad([prompt_ids[i] for i in batch])
            sampler = (
                [PerRequestSampler([seeds[i] for i in batch], sampling.temperature, sampling.top_p)] if sample else None
            )
            output = self.model.generate(input_ids=input_ids, attention_mask=mask, logits_processor=sampler, **options)
            new_tokens = output[:, input_ids.shape[1] :]
            for row, index in enumerate(batch):
                tokens = new_tokens[row].tolist()
                stopped = any(token in stops for token in tokens)  # a stop token, then padding
                texts[index] = Generation(
                    self._tokenizer.decode(tokens, skip_special_tokens=True),
                    not stopped and len(tokens) >= sampling.max_new_tokens,
                )
            generated = int((new_tokens != self._tokenizer.pad_token_id).sum())  # pad fills after a stop
            progress.update(len(batch), int(mask.sum()) + generated)
        progress.close()
        return texts

    @torch.inference_mode()
    def _option_logprobs(self, prompt_ids: list[list[int]], option_ids: list[int]) -> np.ndarray:
        """Next-token log-probabilities of the options after each prompt.

        Rating prompts share a long prefix (rubric, few-shot turns): its keys and values are
        computed once and reused for every batch, so only each prompt's own suffix is run.
        """
        prefix = _common_prefix_length(prompt_ids)
        if prefix < self.MIN_SHARED_PREFIX:
            prefix = 0
        cache = None
        if prefix:
            ids = torch.tensor([prompt_ids[0][:prefix]], device=self.device)
            cache = self.model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        suffixes = [ids[prefix:] for ids in prompt_ids]
        result = np.zeros((len(prompt_ids), len(option_ids)))
        options = torch.tensor(option_ids, device=self.device)
        progress = TokenProgress(len(prompt_ids), "score", self.config.show_progress)
        for batch in self._batches(suffixes, reserve=prefix):
            width = max(len(suffixes[i]) for i in batch)
            pad = self._tokenizer.pad_token_id
            # right padding: every row's suffix starts right after the shared prefix
            input_ids = torch.tensor(
                [suffixes[i] + [pad] * (width - len(suffixes[i])) for i in batch], device=self.device
            )
            mask = torch.tensor(
                [[1] * (prefix + len(suffixes[i])) + [0] * (width - len(suffixes[i])) for i in batch],
                device=self.device,
            )
            positions = torch.arange(prefix, prefix + width, device=self.device).expand(len(batch), -1)
            past = None
            if cache is not None:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(batch))
            # only each row's last position goes through the output layer (262k columns for Gemma)
            output = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=past,
                output_hidden_states=True,
                logits_to_keep=1,
            )
            last = torch.tensor([len(suffixes[i]) - 1 for i in batch], device=self.device)
            hidden = output.hidden_states[-1][torch.arange(len(batch), device=self.device), last]
            final = self._output_layer(hidden, output.logits[:, -1], last == width - 1)
            result[batch] = torch.log_softmax(final.float(), dim=-1)[:, options].cpu().numpy()
            progress.update(len(batch), sum(len(suffixes[i]) for i in batch))
        progress.close()
        return result

    def _output_layer(
        self, hidden: torch.Tensor, forward_logits: torch.Tensor, full_rows: torch.Tensor
    ) -> torch.Tensor:
        """Logits of ``hidden`` (rows × hidden size) as the model's forward makes them: output
        embedding, then soft-capping where configured.

        The forward itself keeps only the batch's last position (``logits_to_keep=1``, which every
        transformers release reads the same way; a tensor of per-row positions is read differently
        from one release to the next). Rows whose own last token is there (``full_rows``) check the
        result against the forward's logits, so a model that scales its logits otherwise fails
        loudly instead of scoring wrong."""
        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        if not torch.allclose(logits[full_rows].float(), forward_logits[full_rows].float(), rtol=1e-3, atol=1e-3):
            raise OutputLayerMismatchError(
                f"{type(self.model).__name__}: its logits are not the output embedding of its last hidden state; "
                "score completions with the vllm backend"
            )
        return logits

    @torch.inference_mode()
    def _token_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[np.ndarray]:
        result: list[np.ndarray] = [np.zeros(0)] * len(sequences)
        progress = TokenProgress(len(sequences), "score text", self.config.show_progress)
        for batch in self._batches(sequences, reserve=0):
            width = max(len(sequences[i]) for i in batch)
            pad = self._tokenizer.pad_token_id
            input_ids = torch.tensor(
                [sequences[i] + [pad] * (width - len(sequences[i])) for i in batch], device=self.device
            )
            mask = torch.tensor(
                [[1] * len(sequences[i]) + [0] * (width - len(sequences[i])) for i in batch], device=self.device
            )
            # the output layer runs row by row on the completion's positions only: a batch's logits
            # at once would be tokens × vocabulary floats (4 GiB for 4,096 tokens of Gemma)
            output = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
            for row, index in enumerate(batch):
                # position t predicts token t + 1; the last position, which predicts nothing here,
                # is computed too where it is the forward's own: the check of the output layer
                start, end = starts[index], len(sequences[index])
                full = torch.zeros(end - start + 1, dtype=torch.bool, device=self.device)
                full[-1] = end == width
                logits = self._output_layer(
                    output.hidden_states[-1][row, start - 1 : end], output.logits[row].expand(len(full), -1), full
                )[:-1]
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                targets = input_ids[row, start:end].unsqueeze(-1)
                result[index] = logprobs.gather(-1, targets).squeeze(-1).cpu().numpy().astype(np.float64)
            progress.update(len(batch), int(mask.sum()))
        progress.close()
        return result


class OutputLayerMismatchError(RuntimeError):
    """The model's logits are not its output embedding (and soft-capping) applied to its last hidden
    state, so completions cannot be scored position by position."""


def _common_prefix_length(sequences: list[list[int]]) -> int:
    """Tokens all sequences share at the start, leaving each at least one token of its own."""
    shortest = min(map(len, sequences))
    first = sequences[0]
    length = 0
    while length < shortest - 1 and all(s[length] == first[length] for s in sequences):
        length += 1
    return length
