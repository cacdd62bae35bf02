"""A thin, safe layer over llama.cpp's low-level API: load, tokenize, batched decode.

The high-level ``Llama`` class decodes one sequence at a time. World-model search asks about
all candidate actions of one state at once, so this engine keeps the shared prompt prefix
(goal and state) in sequence 0 of a unified KV cache, copies it to one sequence per sibling
(cheap: the cells are shared) and decodes all siblings' tokens together in one batch per
step. Only the tokens after the common prefix are ever evaluated.

Not thread-safe: :class:`~planner.world.llama.LlamaWorldModel` holds a lock around it.

llama.cpp aborts the whole process (``GGML_ASSERT``) for some parameter combinations instead
of returning an error, so every size is checked and bounded here before it reaches llama.cpp:
it clamps ``n_batch`` to ``n_ctx`` and sizes its output buffer for ``n_batch`` outputs, then
asserts that ``n_seq_max`` outputs fit that buffer — so ``n_seq_max`` is bounded by
``min(n_ctx, n_batch)`` (and by llama.cpp's own sequence limit, 256 in this build).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from planner.cores import available_cores
from planner.errors import ConfigError, ContextOverflowError, ModelLoadError, WorldModelError
from planner.logs import get_logger

_LOG = get_logger(__name__)

_log_lines: deque[str] = deque(maxlen=50)
_init_lock = threading.Lock()
_initialised = False


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp logs to stderr by default; keep the last lines to explain load failures.
    with contextlib.suppress(Exception):  # never raise into C
        _log_lines.append(text.decode("utf-8", "replace").rstrip())


def init_backend() -> None:
    """Initialise llama.cpp once per process, routing its log lines away from stderr."""
    global _initialised
    with _init_lock:
        if not _initialised:
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True


MAX_N_CTX = 2**18
"""Largest KV cache accepted (tokens): 262,144 cells are 512 MiB of F16 keys and values for
the shipped model (128-wide, 4 layers), far beyond what world-model prompts need."""
MAX_N_BATCH = 2**16
"""Largest decode batch (tokens)."""
MAX_THREADS = 1024
"""Largest thread count accepted at all (more than the available cores is bounded to them)."""
MAX_GPU_LAYERS = 2**31 - 1
"""llama.cpp's "every layer" (its parameter is a 32-bit integer)."""

SMALL_MODEL_BYTES = 64 * 2**20
"""Models below this size decode fastest on one thread (measured: benchmarks/contention.py)."""


def gpu_offload_supported() -> bool:
    """Whether this build of llama.cpp can offload layers to a GPU (CUDA, Metal, Vulkan…)."""
    init_backend()
    return bool(llama_cpp.llama_supports_gpu_offload())


def default_threads(model_bytes: int) -> int:
    """llama.cpp threads for a model of ``model_bytes`` when the user names none.

    llama.cpp's worker threads spin-wait for each other, so when another process wants a core
    every decode waits for a descheduled thread: with as many threads as cores, one busy
    process beside the planner made it 50x slower. A small model gains little from threads, so
    it gets one (which never waits for a sibling); a large one gets all but one available core.
    """
    if model_bytes < SMALL_MODEL_BYTES:
        return 1
    return max(1, available_cores() - 1)


def resolve_threads(n_threads: int | None, model_bytes: int) -> int:
    """``n_threads`` bounded by the available cores, or :func:`default_threads`."""
    if n_threads is None:
        return default_threads(model_bytes)
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or not 1 <= n_threads <= MAX_THREADS:
        raise ConfigError(f"n_threads must be a whole number in 1..{MAX_THREADS}, got {n_threads!r}")
    cores = available_cores()
    if n_threads > cores:
        _LOG.warning("threads_bounded", asked=n_threads, cores=cores)
        return cores
    return n_threads


def check_whole(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an ``int`` in ``low..high``; :class:`ConfigError` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return value


def max_sequences() -> int:
    """Most parallel sequences llama.cpp supports in one context (its ``LLAMA_MAX_SEQ``)."""
    return int(llama_cpp.llama_max_parallel_sequences())


def context_sizes(*, n_ctx: int, n_seq_max: int, n_batch: int) -> tuple[int, int]:
    """``(n_batch, n_seq_max)`` that llama.cpp accepts for ``n_ctx``.

    llama.cpp clamps the batch to the context and reserves one output row per batch token;
    creating a context with more sequences than that aborts the process. Both values are
    bounded here instead (each at least 1).
    """
    batch = max(1, min(n_batch, n_ctx))
    return batch, max(1, min(n_seq_max, batch, max_sequences()))


def recent_errors() -> str:
    """The last error lines llama.cpp logged (or a note that it gave none)."""
    errors = [ln for ln in _log_lines if "error" in ln.lower() or "failed" in ln.lower()]
    return "; ".join(errors[-3:]) if errors else "llama.cpp gave no reason"


class LlamaEngine:
    """One llama.cpp model and context.

    Args:
        path: GGUF file.
        n_ctx: KV-cache cells shared by all sequences (tokens), ``1..MAX_N_CTX``.
        n_seq_max: parallel sequences (sequence 0 holds the shared prefix); bounded by
            :func:`context_sizes`, so read :attr:`n_seq_max` back.
        n_threads: CPU threads (``None``: :func:`default_threads`; more than the available
            cores is bounded to them; above ``MAX_THREADS`` a :class:`ConfigError`).
        n_gpu_layers: layers offloaded to a GPU (CUDA/Metal builds; 0 = CPU only, -1 = all).
        n_batch: most tokens decoded in one call (bounded by ``n_ctx``; read :attr:`n_batch`).

    Raises :class:`ConfigError` for a size out of range and :class:`ModelLoadError` when
    llama.cpp cannot load the model or create the context.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_seq_max: int = 64,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
    ) -> None:
        init_backend()
        self.path = Path(path)
        self._model = None
        self._ctx = None
        self._batch = None
        n_ctx = check_whole("n_ctx", n_ctx, 1, MAX_N_CTX)
        n_batch, n_seq_max = context_sizes(n_ctx=n_ctx, n_seq_max=check_whole("n_seq_max", n_seq_max, 1, 2**31 - 1),
                                           n_batch=check_whole("n_batch", n_batch, 1, MAX_N_BATCH))
        n_gpu_layers = check_whole("n_gpu_layers", n_gpu_layers, -1, MAX_GPU_LAYERS)
        n_threads = resolve_threads(n_threads, self.path.stat().st_size if self.path.is_file() else 0)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = MAX_GPU_LAYERS if n_gpu_layers < 0 else n_gpu_layers
        _log_lines.clear()
        model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {self.path}: {recent_errors()}")
        self._model = model
        self.gpu_layers = n_gpu_layers if gpu_offload_supported() else 0
        """Layers asked to run on a GPU (-1: all); 0 when this llama.cpp build has no GPU backend."""
        if n_gpu_layers and not self.gpu_layers:
            _LOG.warning("gpu_layers_ignored", n_gpu_layers=n_gpu_layers,
                         reason="this llama.cpp build has no GPU backend: every layer runs on the CPU "
                                "(rebuild llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on or -DGGML_METAL=on)")
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(model))
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = True
        cparams.no_perf = True
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        self.n_threads = n_threads
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise ModelLoadError(f"llama.cpp could not create a context for {self.path} (n_ctx={n_ctx}, "
                                 f"n_seq_max={n_seq_max}, n_batch={n_batch}): {recent_errors()}")
        self._ctx = ctx
        # What llama.cpp made of the request: n_ctx is padded up, n_batch clamped to n_ctx.
        self.n_ctx = min(n_ctx, int(llama_cpp.llama_n_ctx(ctx)))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(ctx))
        self.n_batch = min(n_batch, int(llama_cpp.llama_n_batch(ctx)), int(llama_cpp.llama_n_ubatch(ctx)))
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(self._vocab))

    # -- vocabulary ---------------------------------------------------------------------------
    def piece(self, token: int) -> str:
        """The vocabulary text of ``token`` (with ``▁`` for spaces)."""
        return llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def pieces(self) -> list[str]:
        return [self.piece(i) for i in range(self.n_vocab)]

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        """llama.cpp's own tokenization of ``text``."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_bos, False)
        if n < 0:
            raise WorldModelError(f"tokenization needs {-n} tokens, more than {cap}")
        return list(buf[:n])

    # -- KV cache -------------------------------------------------------------------------------
    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        llama_cpp.llama_memory_seq_rm(self._mem, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> list[int]:
        """Evaluate ``(token, position, sequence, want_logits)`` entries, in chunks of
        ``n_batch``. Returns, for each entry that wants logits, a handle for :meth:`logits`
        (valid until the next call). Only the last chunk may want logits
        (:class:`WorldModelError` otherwise); positions must lie in ``0..n_ctx-1`` and
        sequences in ``0..n_seq_max-1`` (:class:`ContextOverflowError` otherwise)."""
        handles: list[int] = []
        batch = self._batch
        assert batch is not None
        self._check_entries(entries)
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            for i, (token, pos, seq, want) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = 1 if want else 0
            batch.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(self._ctx, batch)
            if rc != 0:
                if rc == 1:
                    raise ContextOverflowError(
                        f"llama.cpp found no KV-cache slot for {len(chunk)} tokens "
                        f"(n_ctx={self.n_ctx}); raise n_ctx or lower the batch of siblings")
                raise WorldModelError(f"llama_decode failed with code {rc}")
            last_chunk = start + self.n_batch >= len(entries)
            if last_chunk:
                handles = [i for i, e in enumerate(chunk) if e[3]]
            elif any(e[3] for e in chunk):
                raise WorldModelError(f"only the last chunk of {self.n_batch} tokens of a decode call may "
                                      f"request logits ({len(entries)} entries given)")
        return handles

    def _check_entries(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Refuse what llama.cpp would abort on: tokens, positions or sequences out of range."""
        for token, pos, seq, _ in entries:
            if not 0 <= token < self.n_vocab:
                raise WorldModelError(f"token id {token} outside the vocabulary of {self.n_vocab}")
            if not 0 <= pos < self.n_ctx:
                raise ContextOverflowError(f"position {pos} outside the context of {self.n_ctx} tokens")
            if not 0 <= seq < self.n_seq_max:
                raise ContextOverflowError(f"sequence {seq} outside the {self.n_seq_max} sequences of this context")

    def logits(self, handle: int) -> np.ndarray:
        """A copy of the logits row ``handle`` (from the last :meth:`decode`)."""
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, handle)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def close(self) -> None:
        """Free the batch, context and model (safe to call twice)."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()
