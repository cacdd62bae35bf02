"""``RemoteWorldModel``: a fact-delta GGUF world model served by a llama.cpp server.

Any server that speaks the OpenAI-compatible completions API with llama.cpp's extensions —
llama.cpp's own ``llama-server`` or llama-cpp-python's server (``planner serve`` starts one) —
can run the model; this client asks it for the same answers :class:`~planner.world.llama.
LlamaWorldModel` computes in-process, with the same codec, the same constraints and the same
validation. Only the GGUF file's header is read here (its codec, schemas and vocabulary), so
the client needs the file the server runs, never its weights in memory.

How an answer is decoded through a completions API (one per candidate action, up to
``concurrency`` at once over a pool of keep-alive connections):

* Every request is greedy (``temperature = 0``) with a logit bias of :data:`BIAS` on every
  word of the codec for the bound problem, so the server's choice at each step is the
  likeliest codec word, and it returns each chosen token's log-probability under the model's
  unconstrained distribution (what the in-process decoder sums).
* The client replays the server's tokens through the same answer rules as the in-process
  decoder. A token the rules allow at its step is exactly the in-process choice there (the
  likeliest of a superset that contains it is the likeliest of the allowed ones); at the first
  token they do not allow, the rest is dropped and that one step is asked again with the bias
  on the allowed tokens alone. So most answers take one request, and every answer is the
  in-process answer.
* Retries after a failed validation sample with ``temperature > 0`` from the allowed tokens
  (a sampled token outside them is drawn again from them alone: the same distribution).

Transport failures (refused connections, timeouts, 429 and 5xx answers) are retried with
exponential back-off (tenacity), then raise :class:`~planner.errors.ServerError` naming the
server; a 4xx answer raises at once with the server's message. A server error is never read as
an invalid answer (``on_invalid="reject"`` does not hide it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from planner.errors import ConfigError, ModelLoadError, ServerError, WorldModelError
from planner.logs import get_logger
from planner.types import Action, FactGoal, State
from planner.world.base import ModelStats
from planner.world.decoder import Answer, AnswerRules
from planner.world.engine import check_whole
from planner.world.gguf_io import read_model_vocabulary
from planner.world.llama import LlamaWorldModel, _check_arguments
from planner.world.vocab import SPACE
from planner.world.votes import VOTE_BELOW

log = get_logger(__name__)

BIAS = 100.0
"""Logit bias on the codec's words (natural-log units): far above any gap between a word and
a token outside the codec, small enough that float32 logits keep their order."""
MAX_CONCURRENCY = 256
"""Most requests one model keeps in flight."""


def check_server_url(url: object) -> str:
    """``url`` when it is an ``http(s)://host[:port][/path]`` URL with a port in 1..65535;
    else :class:`ConfigError` naming it."""
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"server url must start with http:// or https://, got {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"server url {url!r} is malformed: {exc}") from None
    if not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"server url {url!r} names no host")
    if port == 0:
        raise ConfigError(f"server url {url!r}: port 0 is not a port to connect to")
    return url


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise ConfigError("a remote world model needs the httpx package: pip install 'planner[remote]'") from None
    return httpx


@dataclass(frozen=True)
class Step:
    """One token a server chose: its vocabulary text, its log-probability under the model's
    unconstrained distribution, and (when asked) the likeliest alternatives' texts and
    log-probabilities at that step."""

    text: str
    logprob: float
    top: dict[str, float]


class CompletionClient:
    """A pooled, retrying client of one server's ``/v1/completions``.

    Args:
        url: the server's base URL (``http://127.0.0.1:8080``; a trailing ``/v1`` is accepted).
        timeout: seconds to wait for a connection or an answer (finite, > 0).
        retries: extra attempts after a transport failure (``0..20``).
        max_connections: keep-alive connections in the pool (``1..MAX_CONCURRENCY``).
        api_key: sent as a bearer token when given (``llama-server --api-key``).
    """

    def __init__(self, url: str, *, timeout: float = 30.0, retries: int = 3, max_connections: int = 4,
                 api_key: str | None = None) -> None:
        url = check_server_url(url)
        httpx = _import_httpx()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
                math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        check_whole("retries", retries, 0, 20)
        self.url = url.rstrip("/").removesuffix("/v1")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout), headers=headers,
                                  limits=httpx.Limits(max_connections=max_connections,
                                                      max_keepalive_connections=max_connections))
        self._httpx = httpx
        self.aborted = False
        """Set by :meth:`abort`: no request is sent or retried any more."""
        self.requests = 0
        """Requests answered so far (retries of one request count once)."""

    def close(self) -> None:
        self._http.close()

    def abort(self) -> None:
        """Abandon every request in flight (their threads fail at once instead of waiting for a
        stalled server) and refuse new ones: for an interrupt."""
        self.aborted = True
        self._http.close()

    def model_id(self) -> str | None:
        """The model the server names at ``/v1/models`` (``None`` when it names none).
        Raises :class:`ModelLoadError` when no server answers."""
        try:
            data = self._call("GET", "/v1/models", None)
        except ServerError as exc:
            raise ModelLoadError(str(exc)) from None
        models = data.get("data") if isinstance(data, dict) else None
        if isinstance(models, list) and models and isinstance(models[0], dict):
            ident = models[0].get("id")
            return ident if isinstance(ident, str) else None
        return None

    def complete(self, prompt: str, *, bias: Iterable[int], max_tokens: int, temperature: float = 0.0,
                 seed: int = 0, top: int = 0) -> list[Step]:
        """The tokens the server generates after ``prompt`` (its text; the server adds the
        begin-of-sequence token) with ``BIAS`` added to the logits of the token ids ``bias``:
        greedy for ``temperature`` 0, else sampled from the whole biased distribution
        (no top-k, top-p or min-p cut, no repetition penalty). ``top`` > 0 also returns that
        many likeliest alternatives at each step."""
        body = {
            "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
            "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "presence_penalty": 0.0,
            "frequency_penalty": 0.0, "logprobs": max(top, 1), "stream": False,
            "logit_bias": {str(t): BIAS for t in bias},
        }
        data = self._call("POST", "/v1/completions", body)
        try:
            lp = data["choices"][0]["logprobs"]
            texts, logprobs = lp["tokens"], lp["token_logprobs"]
            tops = lp.get("top_logprobs") or [{}] * len(texts)
            steps = [Step(str(t), float(p), {str(k): float(v) for k, v in (d or {}).items()})
                     for t, p, d in zip(texts, logprobs, tops)]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ServerError(f"server {self.url} answered without per-token log-probabilities "
                                  f"({type(exc).__name__}: {exc}); llama-cpp-python's server needs "
                                  f"--logits_all true", raw=str(data)[:300]) from None
        return steps

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One request, retried on transport failures; the decoded JSON answer."""
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        httpx = self._httpx

        def transient(exc: BaseException) -> bool:
            if self.aborted:
                return False
            if isinstance(exc, httpx.TransportError):
                return True
            return isinstance(exc, httpx.HTTPStatusError) and (exc.response.status_code in (408, 429)
                                                               or exc.response.status_code >= 500)

        def once() -> Any:
            response = self._http.request(method, path, json=body)
            response.raise_for_status()
            return response.json()

        try:
            for attempt in Retrying(stop=stop_after_attempt(self.retries + 1), reraise=False,
                                    wait=wait_exponential(multiplier=0.05, max=2.0),
                                    retry=retry_if_exception(transient)):
                with attempt:
                    data = once()
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise ServerError(f"server {self.url} failed {self.retries + 1} times on {method} {path}: "
                                  f"{_describe(last)}") from None
        except httpx.HTTPStatusError as exc:
            raise ServerError(f"server {self.url} refused {method} {path}: {_describe(exc)}") from None
        except ValueError as exc:  # not JSON
            raise ServerError(f"server {self.url} answered {method} {path} with something that is not "
                                  f"JSON: {exc}") from None
        self.requests += 1
        return data


def _describe(exc: BaseException | None) -> str:
    """One line about a transport or HTTP failure, with the server's message when it sent one."""
    if exc is None:
        return "no answer"
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            text = response.text.strip().replace("\n", " ")
        except Exception:  # a streamed or undecodable body
            text = ""
        return f"HTTP {response.status_code} {text[:300]}".strip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _RemoteVocabulary:
    """What :class:`LlamaWorldModel`'s methods read from an engine, for a served model: the
    file's vocabulary and context size (nothing to close)."""

    def __init__(self, pieces: list[str], bos: int, *, context: int) -> None:
        self._pieces, self.bos = pieces, bos
        self.n_ctx = self.n_ctx_train = context
        self.n_seq_max = MAX_CONCURRENCY + 1

    def pieces(self) -> list[str]:
        return self._pieces

    def close(self) -> None:
        pass


class RemoteDecoder:
    """:class:`~planner.world.decoder.Decoder`'s interface over a completions server: the same
    answers (see the module's description), siblings decoded concurrently."""

    def __init__(self, client: CompletionClient, *, pieces: Sequence[str], stats: ModelStats, concurrency: int,
                 seed: int = 0) -> None:
        self.client = client
        self.pieces = pieces
        self.stats = stats
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="planner-remote")
        self.codec_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        """Token ids of every codec word of the bound problem (the bias of a first request)."""
        self._id_of: dict[str, int] = {}

    def bind(self, word_ids: dict[str, int]) -> None:
        """The codec's words of the bound problem (``word -> token id``)."""
        self.codec_ids = np.array(sorted(set(word_ids.values())), dtype=np.int64)
        self._id_of = {self.pieces[i].replace(SPACE, " ").strip(): i for i in self.codec_ids}

    def clear(self) -> None:
        """Nothing is cached here (the server keeps its own prompt cache)."""

    def reseed(self, seed: int) -> None:
        """Seed the retry sampling anew."""
        with self._rng_lock:
            self._rng = np.random.default_rng(seed)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def decode(self, prefix: list[int], suffixes: Sequence[list[int]], *, rules: Callable[[], AnswerRules],
               max_new: int, temperature: float = 0.0, slot: int = 0) -> list[Answer]:
        """One answer per suffix for the prompt ``prefix + suffix`` (``prefix`` starts with the
        begin-of-sequence token, which the server adds itself; ``slot`` is the in-process
        decoder's, as the server keeps its own cache)."""
        head = self._text(prefix[1:])
        head = head[1:] if head.startswith(" ") else head  # the server's tokenizer puts the first space back
        self.stats.prompt_tokens += len(prefix) - 1 + sum(len(s) for s in suffixes)
        if len(suffixes) == 1:
            answers = [self._answer(head, suffixes[0], rules(), max_new, temperature)]
        else:
            futures = [self._pool.submit(self._answer, head, s, rules(), max_new, temperature) for s in suffixes]
            try:
                answers = [f.result() for f in futures]
            except Exception:  # one answer failed: the queued ones are not sent
                for f in futures:
                    f.cancel()
                raise
            except BaseException:  # an interrupt: abandon the requests in flight too, at once
                for f in futures:
                    f.cancel()
                self.client.abort()
                raise
        self.stats.generated_tokens += sum(len(a.tokens) for a in answers)
        return answers

    def _text(self, ids: Sequence[int]) -> str:
        return "".join(self.pieces[t] for t in ids).replace(SPACE, " ")

    def _seed(self) -> int:
        with self._rng_lock:
            return int(self._rng.integers(0, 2**31 - 1))

    def _ask(self, text: str, bias: Iterable[int], max_tokens: int, temperature: float,
             top: int) -> list[tuple[int, Step]]:
        if self.client.aborted:
            raise ServerError(f"requests to {self.client.url} were abandoned (interrupted)")
        steps = self.client.complete(text, bias=bias, max_tokens=max_tokens, temperature=temperature,
                                     seed=self._seed() if temperature > 0 else 0, top=top)
        if not steps:
            raise ServerError(f"server {self.client.url} answered no tokens (it stopped before writing any: an "
                              "end-of-sequence token, or max_tokens ignored)")
        out = []
        for step in steps:
            token = self._id_of.get(step.text.strip())
            if token is None:  # a token outside the codec: only the steps before it are usable
                break
            out.append((token, step))
        if not out:
            raise ServerError(f"server {self.client.url} answered with {steps[0].text!r}, no word of this "
                                  "model's codec: does it run the same GGUF file?", raw=steps[0].text)
        return out

    def _answer(self, head: str, suffix: list[int], rules: AnswerRules, max_new: int,
                temperature: float) -> Answer:
        answer = Answer()
        text = head + self._text(suffix)
        pending: list[tuple[int, Step]] = []
        while len(answer.tokens) < max_new:
            allowed = rules.allowed()
            if not pending:
                first = not answer.tokens
                pending = self._ask(text, self.codec_ids, max_new - len(answer.tokens), temperature, 5 if first else 0)
            token, step = pending[0]
            if token not in allowed:
                pending = self._ask(text, allowed.tolist(), 1, temperature, 0)
                token, step = pending[0]
                if token not in allowed:
                    raise ServerError(f"server {self.client.url} chose {step.text!r} although the logit bias "
                                          "allowed only the codec's answer words: does it apply logit_bias?",
                                          raw=step.text)
            pending = pending[1:]
            if not answer.tokens:
                answer.first = self._first(text, allowed, token, step)
            answer.logprob += step.logprob
            answer.tokens.append(token)
            text += self._text([token])
            forced = rules.push(token)
            if forced is None:
                return answer
            for f in forced:
                answer.tokens.append(f)
                text += self._text([f])
                if pending and pending[0][0] == f:
                    pending = pending[1:]  # the server wrote the forced token itself: its context matches
                else:
                    pending = []
        raise WorldModelError(f"server {self.client.url}: the answer did not end within {max_new} tokens",
                              raw=self._text(answer.tokens).strip())

    def _first(self, text: str, allowed: np.ndarray, token: int, step: Step) -> dict[int, float]:
        """The log-probability of every token allowed at the first step (the verdicts)."""
        first = {token: step.logprob}
        for t in allowed.tolist():
            if t in first:
                continue
            word = self._text([t])
            known = step.top.get(word, step.top.get(word.strip()))
            if known is None:  # not among the server's alternatives: ask for it alone
                known = self._ask(text, [t], 1, 0.0, 0)[0][1].logprob
            first[t] = known
        return first


class RemoteWorldModel(LlamaWorldModel):
    """A fact-delta world model for one problem, answered by a llama.cpp server.

    Args:
        path: the GGUF file the server runs: its header gives the codec, the schemas and the
            vocabulary (the weights are not loaded here).
        url: the server's base URL, e.g. ``http://127.0.0.1:8080`` (``planner serve MODEL``
            starts one on the loopback interface).
        objects, goal, state, facts, actions, retries, retry_temperature, seed, on_invalid,
            consistent, votes, vote_below: as for :class:`~planner.world.llama.LlamaWorldModel` (the votes
            are counted here, each numbering's questions sent to the server).
        concurrency: requests in flight at once for the candidate actions of one state
            (``1..MAX_CONCURRENCY``; the connection pool has as many connections).
        timeout: seconds to wait for a connection or an answer.
        http_retries: extra attempts after a transport failure (``0..20``).
        api_key: bearer token for servers that ask for one.

    Raises :class:`~planner.errors.ConfigError` for an argument out of range (or httpx
    missing), :class:`~planner.errors.ModelLoadError` for a file that is not a fact-delta model
    or a server that does not answer, and :class:`~planner.errors.VocabularyError` for a
    problem the vocabulary cannot write.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        url: str,
        objects: Sequence[str],
        goal: FactGoal,
        state: State | None = None,
        facts: Iterable[str] = (),
        actions: Sequence[Action] = (),
        concurrency: int = 4,
        timeout: float = 30.0,
        http_retries: int = 3,
        api_key: str | None = None,
        retries: int = 2,
        retry_temperature: float = 0.8,
        seed: int = 0,
        on_invalid: Literal["raise", "reject"] = "raise",
        consistent: bool = True,
        votes: int = 1,
        vote_below: float = VOTE_BELOW,
    ) -> None:
        check_whole("concurrency", concurrency, 1, MAX_CONCURRENCY)
        info, pieces, bos = read_model_vocabulary(path)
        context = info.context or 4096
        _check_arguments(mode="batched", max_siblings=concurrency, retries=retries,
                         retry_temperature=retry_temperature, seed=seed, on_invalid=on_invalid,
                         n_ctx=max(context, 32), consistent=consistent, votes=votes, vote_below=vote_below)
        self._setup(path, info, objects=objects, goal=goal, state=state, facts=facts, actions=actions,
                    n_ctx=context, mode="batched", on_invalid=on_invalid, retries=retries,
                    retry_temperature=retry_temperature, seed=seed, consistent=consistent, votes=votes,
                    vote_below=vote_below)
        self.max_siblings = concurrency
        self.client = CompletionClient(url, timeout=timeout, retries=http_retries, max_connections=concurrency,
                                       api_key=api_key)
        try:
            served = self.client.model_id()
            self.engine = _RemoteVocabulary(pieces, bos, context=context)  # type: ignore[assignment]
            self.decoder = RemoteDecoder(self.client, pieces=self.engine.pieces(), stats=self.stats,  # type: ignore[assignment]
                                         concurrency=concurrency, seed=seed)
            self._index = {p: i for i, p in enumerate(self.engine.pieces())}
            self.word_ids = {}
            self._id_word = {}
            self._learn_words(len(self.codec.objects))
        except BaseException:
            self.client.close()
            raise
        log.info("remote_model_ready", url=self.client.url, path=str(self._path), served=served)

    def _learn_words(self, n_objects: int) -> None:
        super()._learn_words(n_objects)
        self.decoder.bind(self.word_ids)  # type: ignore[attr-defined]

    def reset_decoding(self) -> None:
        """Reseed the retry sampler, as a new model's (the server keeps its own cache)."""
        with self._lock:
            self.decoder.reseed(self._seed)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.decoder.close()  # type: ignore[attr-defined]
        self.client.close()


__all__ = ["BIAS", "CompletionClient", "RemoteDecoder", "RemoteWorldModel", "Step"]
