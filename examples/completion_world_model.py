"""Any GGUF as a world model, through llama-cpp-python's completion API.

The planner's own models speak the compact fact-delta format (``planner.world.llama``). This
example plugs a model that speaks text or chat into the same ``WorldModel`` protocol
(``predict`` / ``predict_many`` / ``stats``), so search and agent can use it unchanged:

- :class:`TextCodec` (``text``, version 1) — free-text states. A text state holds its recent
  turns separated by blank lines; the prompt keeps only the last ``history`` turns (a bounded
  history) and the model answers ``ok``/``fail``, the next observation and ``done``.
- :class:`ChatCodec` (``chat``, version 1) — any instruction-tuned GGUF. The prompt is the
  model's own chat template, rendered in llama-cpp-python's sandboxed Jinja environment, with
  few-shot examples; the answer is JSON constrained by a grammar generated from a pydantic
  schema, then validated against the state like every other answer.

:class:`CompletionWorldModel` runs either codec with greedy decoding, a lock around the
non-thread-safe ``Llama`` object, bounded retries (``planner.world.retry``) and clear errors.

Run it on an instruction-tuned GGUF of your own to see how often its predictions agree with
the exact Blocksworld simulator along a random walk (small instruct models mostly do not: the
planner ships a trained fact-delta model for that reason)::

    python examples/completion_world_model.py MODEL.gguf [--blocks 3] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from llama_cpp import Llama, LlamaGrammar, LogitsProcessorList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from pydantic import BaseModel, ConfigDict, ValidationError

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import CodecError, ConfigError, ContextOverflowError, ModelLoadError, WorldModelError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.base import ModelStats
from planner.world.codec import check_delta, parse_atom
from planner.world.engine import MAX_GPU_LAYERS, MAX_N_CTX, init_backend, recent_errors, resolve_threads
from planner.world.gguf_io import read_model_info
from planner.world.retry import retry_invalid

TURN_SEPARATOR = "\n\n"
MIN_N_CTX = 32
"""Smallest context (tokens) :class:`CompletionWorldModel` accepts."""
MAX_RETRIES = 100
"""Most extra attempts for an answer that fails validation."""


class CompletionCodec(Protocol):
    name: str
    version: int

    def render(self, state: State, action: Action, *, template: str | None) -> str: ...

    def parse(self, text: str, state: State, action: Action) -> Prediction: ...

    def grammar(self) -> str | None: ...

    def stop(self) -> list[str]: ...


# -- text codec -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextCodec:
    """Free-text states: prompt with a bounded history, answer ``ok|fail``, observation, done.

    Prompt::

        <turn> … <turn>            (the last ``history`` turns of the state's text)
        > ACTION
        =>

    Answer: ``ok`` or ``fail`` on the first line; after ``ok``, the next observation on the
    following lines and a last line ``done: yes`` or ``done: no``.
    """

    history: int = 4
    name: str = "text"
    version: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.history, bool) or not isinstance(self.history, int) or not 1 <= self.history <= 10_000:
            raise ConfigError(f"history must be a whole number of turns in 1..10000, got {self.history!r}")

    def turns(self, state: State) -> list[str]:
        return [t for t in (state.text or "").split(TURN_SEPARATOR) if t.strip()]

    def render(self, state: State, action: Action, *, template: str | None = None) -> str:
        kept = self.turns(state)[-self.history:]
        return TURN_SEPARATOR.join(kept) + f"\n> {action.name}\n=>"

    def parse(self, text: str, state: State, action: Action) -> Prediction:
        lines = [ln.rstrip() for ln in text.strip().splitlines()]
        if not lines or lines[0].strip() not in ("ok", "fail"):
            raise WorldModelError("text answer must start with a line 'ok' or 'fail'", raw=text)
        if lines[0].strip() == "fail":
            return Prediction(applicable=False, next_state=state, raw=text)
        match = re.fullmatch(r"done:\s*(yes|no)", lines[-1].strip()) if len(lines) > 1 else None
        if match is None:
            raise WorldModelError("text answer must end with a line 'done: yes' or 'done: no'", raw=text)
        observation = "\n".join(lines[1:-1]).strip()
        if not observation:
            raise WorldModelError("text answer has no observation", raw=text)
        done = match.group(1) == "yes"
        return Prediction(applicable=True, next_state=self.next_state(state, action, observation),
                          reward=1.0 if done else 0.0, done=done, raw=text)

    def next_state(self, state: State, action: Action, observation: str) -> State:
        """The state after ``action``: older turns, then the action and the new observation."""
        kept = self.turns(state)[-(self.history - 1):] if self.history > 1 else []
        return State.from_text(TURN_SEPARATOR.join([*kept, f"> {action.name}\n{observation}"]))

    def grammar(self) -> str | None:
        return None

    def stop(self) -> list[str]:
        return ["\n>", "\n=>"]


# -- chat codec -------------------------------------------------------------------------------
class ChatAnswer(BaseModel):
    """The JSON a chat model answers with (its schema generates the grammar)."""

    model_config = ConfigDict(extra="forbid")

    applicable: bool
    added: list[str]
    removed: list[str]
    done: bool


@dataclass(frozen=True)
class ChatExample:
    state: State
    action: Action
    answer: ChatAnswer


@dataclass(frozen=True)
class ChatCodec:
    """Symbolic states for general instruction-tuned models, through their chat template."""

    goal: FactGoal
    predicates: dict[str, int]
    objects: tuple[str, ...]
    examples: tuple[ChatExample, ...] = ()
    system: str = (
        "You are the world model of a planning agent. Given a state (a set of ground facts) "
        "and an action, answer in JSON whether the action's precondition holds, which facts "
        "it adds and removes, and whether the resulting state satisfies the goal."
    )
    name: str = "chat"
    version: int = 1

    def messages(self, state: State, action: Action) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": f"{self.system}\nGoal: {self.goal}"}]
        for ex in self.examples:
            msgs.append({"role": "user", "content": self._ask(ex.state, ex.action)})
            msgs.append({"role": "assistant", "content": ex.answer.model_dump_json()})
        msgs.append({"role": "user", "content": self._ask(state, action)})
        return msgs

    @staticmethod
    def _ask(state: State, action: Action) -> str:
        return f"State: {state.canonical()}\nAction: {action.name}"

    def render(self, state: State, action: Action, *, template: str | None) -> str:
        if not template:
            raise ModelLoadError("the chat codec needs a model with a chat template (tokenizer.chat_template)")
        formatter = Jinja2ChatFormatter(template=template, eos_token="</s>", bos_token="",
                                        add_generation_prompt=True)
        try:
            return formatter(messages=self.messages(state, action)).prompt  # type: ignore[arg-type]
        except Exception as exc:
            raise ModelLoadError(f"the model's chat template failed to render: {exc}") from None

    def parse(self, text: str, state: State, action: Action) -> Prediction:
        try:
            answer = ChatAnswer.model_validate_json(text)
        except ValidationError as exc:
            raise WorldModelError(f"chat answer is not the expected JSON: {exc.errors()[0]['msg']}",
                                  raw=text) from None
        try:
            added = [self._canonical(f) for f in answer.added]
            removed = [self._canonical(f) for f in answer.removed]
            check_delta(answer.applicable, added, removed, answer.done and answer.applicable, state.facts)
        except ValueError as exc:
            raise WorldModelError(f"invalid chat answer: {exc}", raw=text) from None
        if not answer.applicable:
            return Prediction(applicable=False, next_state=state, raw=text)
        nxt = State((state.facts - set(removed)) | set(added))
        return Prediction(applicable=True, next_state=nxt, reward=1.0 if answer.done else 0.0,
                          done=answer.done, raw=text)

    def _canonical(self, fact: str) -> str:
        name, args = parse_atom(fact)
        if name not in self.predicates:
            raise CodecError(f"unknown predicate {name!r} in {fact!r}")
        if len(args) != self.predicates[name]:
            raise CodecError(f"{fact!r}: {name} takes {self.predicates[name]} arguments")
        unknown = [a for a in args if a not in self.objects]
        if unknown:
            raise CodecError(f"{fact!r}: unknown object {unknown[0]!r}")
        return "(" + " ".join([name, *args]) + ")"

    def grammar(self) -> str | None:
        return json.dumps(ChatAnswer.model_json_schema())

    def stop(self) -> list[str]:
        return []


class _LogProbMeter:
    """A logits processor that sums the log-probability of each generated token under the
    model's unconstrained distribution (no ``logits_all`` needed). It sees a token's
    distribution before the token is chosen and the token itself one step later, so the last
    generated token is not counted."""

    def __init__(self, n_prompt: int) -> None:
        self.n_prompt = n_prompt
        self.logprob = 0.0
        self._last: np.ndarray | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self._last is not None and len(input_ids) > self.n_prompt:
            self.logprob += float(self._last[int(input_ids[-1])])
        top = float(scores.max())
        self._last = scores - (top + math.log(float(np.exp(scores - top).sum())))
        return scores

    def confidence(self) -> float:
        return math.exp(self.logprob)


# -- the model --------------------------------------------------------------------------------
class CompletionWorldModel:
    """A world model that asks a GGUF model through llama-cpp-python's completion API.

    Args:
        path: GGUF file.
        codec: a :class:`TextCodec` or :class:`ChatCodec`.
        n_ctx: context in tokens, ``MIN_N_CTX..MAX_N_CTX``.
        n_threads: CPU threads (``None``: :func:`~planner.world.engine.default_threads`; more
            than the available cores is bounded to them).
        n_gpu_layers: layers offloaded to a GPU (0: CPU only; -1: all).
        seed: sampling seed of the retries, ``0..2**32-1``.
        max_tokens: longest answer, at least 1.
        retries: extra attempts (sampled) after an answer fails validation, ``0..MAX_RETRIES``.

    Raises :class:`ConfigError` for an argument out of range and :class:`ModelLoadError`
    when the file cannot be loaded or was made for another codec.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        codec: TextCodec | ChatCodec,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        max_tokens: int = 256,
        retries: int = 2,
    ) -> None:
        for name, value, low, high in (("n_ctx", n_ctx, MIN_N_CTX, MAX_N_CTX), ("seed", seed, 0, 2**32 - 1),
                                       ("max_tokens", max_tokens, 1, MAX_N_CTX), ("retries", retries, 0, MAX_RETRIES),
                                       ("n_gpu_layers", n_gpu_layers, -1, MAX_GPU_LAYERS)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
        info = read_model_info(path)
        if info.codec is not None and info.codec != codec.name:
            raise ModelLoadError(
                f"{path} was made for codec {info.codec!r} version {info.codec_version}, not {codec.name!r}")
        threads = resolve_threads(n_threads, info.size_bytes)
        init_backend()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(512, n_ctx), n_threads=threads,
                             n_threads_batch=threads, n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)
        except Exception as exc:
            raise ModelLoadError(f"llama.cpp could not load {path}: {exc}; {recent_errors()}") from None
        # llama.cpp pads the context it allocates; llama-cpp-python's buffers hold n_ctx tokens.
        self.n_ctx = min(n_ctx, self.llm.n_ctx())
        self.codec = codec
        self.template = self.llm.metadata.get("tokenizer.chat_template")
        self.max_tokens = max_tokens
        self.retries = retries
        self.seed = seed
        self.stats = ModelStats()
        self._lock = threading.RLock()
        self._grammar: Any = None
        schema = codec.grammar()
        if schema is not None:
            try:
                self._grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
            except Exception as exc:
                raise ModelLoadError(f"the answer grammar of codec {codec.name!r} is invalid: {exc}") from None

    def predict(self, state: State, action: Action) -> Prediction:
        with self._lock:
            start = time.perf_counter()
            try:
                return self._predict(state, action)
            finally:
                self.stats.seconds += time.perf_counter() - start

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        # Siblings one after another: llama-cpp-python reuses the shared prompt prefix.
        return [self.predict(state, a) for a in actions]

    def _predict(self, state: State, action: Action) -> Prediction:
        prompt = self.codec.render(state, action, template=self.template)
        n_prompt = len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        if n_prompt + 1 >= self.n_ctx:
            raise ContextOverflowError(
                f"prompt of {n_prompt} tokens does not fit the context of {self.n_ctx} tokens")
        max_tokens = min(self.max_tokens, self.n_ctx - n_prompt)

        def attempt(n: int) -> Prediction:
            meter = _LogProbMeter(n_prompt)
            out = self.llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=0.0 if n == 1 else 0.8,
                seed=self.seed + n, repeat_penalty=1.0, grammar=self._grammar,
                stop=self.codec.stop() or None, logits_processor=LogitsProcessorList([meter]),
            )
            choice = out["choices"][0]  # type: ignore[index]
            usage = out["usage"]  # type: ignore[index]
            self.stats.prompt_tokens += int(usage["prompt_tokens"])
            self.stats.generated_tokens += int(usage["completion_tokens"])
            text = choice["text"]
            pred = self.codec.parse(text, state, action)
            return Prediction(applicable=pred.applicable, next_state=pred.next_state, reward=pred.reward,
                              done=pred.done, confidence=meter.confidence(), raw=text)

        pred = retry_invalid(attempt, retries=self.retries, stats=self.stats)
        self.stats.predictions += 1
        return pred

    def close(self) -> None:
        self.llm.close()



# -- a run: agreement with the exact simulator -------------------------------------------------
def chat_codec_for(env: PDDLEnvironment) -> ChatCodec:
    """A chat codec for ``env``'s problem, with one few-shot example from its simulator."""
    state = env.state
    action = next((a for a in env.candidate_actions(state) if env.simulate(state, a).applicable),
                  env.candidate_actions(state)[0])
    truth = env.simulate(state, action)
    answer = ChatAnswer(applicable=truth.applicable, added=sorted(truth.next_state.facts - state.facts),
                        removed=sorted(state.facts - truth.next_state.facts), done=truth.done)
    return ChatCodec(goal=env.goal, predicates=dict(env.task.predicates), objects=tuple(env.task.objects),
                     examples=(ChatExample(state, action, answer),))


def main() -> None:
    parser = argparse.ArgumentParser(description="How often a chat GGUF agrees with the Blocksworld simulator.")
    parser.add_argument("model", type=Path, help="an instruction-tuned GGUF with a chat template")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="random actions asked about")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = PDDLEnvironment(*write_problem(tmp, args.blocks, seed=args.seed))
    model = CompletionWorldModel(args.model, codec=chat_codec_for(env), n_ctx=args.n_ctx,
                                 max_tokens=args.max_tokens, retries=1, seed=args.seed)
    rng = random.Random(args.seed)
    state, agree, invalid = env.state, 0, 0
    for _ in range(args.steps):
        action = rng.choice(list(env.candidate_actions(state)))
        truth = env.simulate(state, action)
        try:
            agree += model.predict(state, action).same_outcome(truth)
        except WorldModelError:
            invalid += 1
        state = truth.next_state
    model.close()
    print(f"agreement with the simulator: {agree}/{args.steps}, invalid answers: {invalid}")
    print(model.stats)


if __name__ == "__main__":
    main()
