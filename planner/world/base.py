"""The world model protocol and its counters.

A world model answers "what happens if I do this here?" for imagined states. Exact models
(:mod:`planner.world.oracle`) and GGUF language models (:mod:`planner.world.llama`) implement
the same two methods, so search and agent never know which one they use.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.protocols import WorldModel as WorldModel


@dataclass(slots=True)
class ModelStats:
    """Running counters of a world model (mutable; read a :meth:`snapshot` to keep them).

    Attributes:
        predictions: predictions returned (cache hits included).
        cache_hits: predictions answered from a transition cache.
        prompt_tokens: prompt tokens the language model evaluated (0 for exact models).
        generated_tokens: tokens the language model generated.
        retries: outputs that failed validation and were asked again.
        invalid: answers still invalid after the last retry, rejected (treated as "not
            applicable") instead of raised.
        seconds: wall-clock seconds spent inside the model.
        split_votes: predictions whose numberings disagreed (a model asked under several
            object numberings, :mod:`planner.world.votes`; the majority answered).
    """

    predictions: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    retries: int = 0
    seconds: float = 0.0
    invalid: int = 0
    split_votes: int = 0

    def snapshot(self) -> ModelStats:
        return ModelStats(
            self.predictions, self.cache_hits, self.prompt_tokens, self.generated_tokens,
            self.retries, self.seconds, self.invalid, self.split_votes,
        )

    def since(self, earlier: ModelStats) -> ModelStats:
        """Counters accumulated after ``earlier`` was taken."""
        return ModelStats(
            self.predictions - earlier.predictions,
            self.cache_hits - earlier.cache_hits,
            self.prompt_tokens - earlier.prompt_tokens,
            self.generated_tokens - earlier.generated_tokens,
            self.retries - earlier.retries,
            self.seconds - earlier.seconds,
            self.invalid - earlier.invalid,
            self.split_votes - earlier.split_votes,
        )
