"""The project's own tokenizer: one token per ground fact, action or marker word.

A vocabulary is derived from a domain: every predicate and every action schema grounded over
placeholder objects ``x1 … xK``, plus the codec's marker words. It is stored in a GGUF file as
a SentencePiece-style ("llama") vocabulary, so llama.cpp tokenizes our text exactly as
training did: words are separated by spaces (rendered ``▁``), every word and every proper
prefix of it is a piece, and the 256 byte pieces make any other text representable.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from planner.errors import CodecError

SPACE = "\u2581"  # SentencePiece's visible space
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
N_SPECIAL = 3
N_BYTES = 256

# GGUF token types (llama.cpp's llama_token_type).
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_BYTE = 1, 2, 3, 6

MAX_ARITY = 4
"""Most arguments of a predicate or action schema. The codec writes one word per grounding,
``max_objects ** arity`` of them per schema: arity 4 over 8 objects is already 4,096 words."""
MAX_OBJECTS = 160
"""Most placeholder objects (``x1 … x160``) a vocabulary may ground over (a laboratory world
names over a hundred objects; :data:`MAX_GROUND_WORDS` bounds the words they make)."""
MAX_GROUND_WORDS = 200_000
"""Most ground words (``Σ max_objects ** arity`` over predicates and actions) in a
vocabulary: each becomes a token and an embedding row, and the codec builds a table of them
at load time (about 100 bytes each in Python, so about 20 MB at the cap). A crafted schema of
arity 12 over 8 objects would otherwise ask for 8**12 ≈ 69 billion words."""


def ground_word_count(schemas: Mapping[str, int], max_objects: int) -> int:
    """Number of ground words of ``schemas`` (name → arity) over ``max_objects`` placeholders."""
    return sum(max_objects**arity for arity in schemas.values())


def check_vocabulary_size(schemas: Mapping[str, int], max_objects: int) -> None:
    """:class:`CodecError` unless ``schemas`` grounded over ``max_objects`` stay within
    :data:`MAX_ARITY`, :data:`MAX_OBJECTS` and :data:`MAX_GROUND_WORDS`."""
    if not 0 <= max_objects <= MAX_OBJECTS:
        raise CodecError(f"max_objects must lie in 0..{MAX_OBJECTS}, got {max_objects}")
    wrong = {k: v for k, v in schemas.items() if not 0 <= v <= MAX_ARITY}
    if wrong:
        raise CodecError(f"arities must lie in 0..{MAX_ARITY}, got {wrong}")
    count = ground_word_count(schemas, max_objects)
    if count > MAX_GROUND_WORDS:
        raise CodecError(f"{len(schemas)} schemas over {max_objects} objects give {count:,} words, "
                         f"more than {MAX_GROUND_WORDS:,}")


def placeholder(i: int) -> str:
    """The ``i``-th (0-based) placeholder object name: ``x1``, ``x2``, …"""
    return f"x{i + 1}"


def render_atom(name: str, args: Sequence[str]) -> str:
    """One word for a ground atom: ``on(x1,x2)``; ``handempty`` for arity 0."""
    return f"{name}({','.join(args)})" if args else name


def ground_words(schemas: Mapping[str, int], max_objects: int) -> list[str]:
    """Every grounding of ``schemas`` (name → arity) over ``max_objects`` placeholders
    (:class:`CodecError` beyond the bounds of :func:`check_vocabulary_size`)."""
    check_vocabulary_size(schemas, max_objects)
    objs = [placeholder(i) for i in range(max_objects)]
    words: list[str] = []
    for name, arity in sorted(schemas.items()):
        for args in itertools.product(objs, repeat=arity):
            words.append(render_atom(name, args))
    return words


@dataclass(frozen=True)
class Vocabulary:
    """Pieces, scores and types of a word-level SentencePiece-style vocabulary.

    ``words`` are the whole words the codec writes; ``pieces`` hold the specials, the 256
    byte pieces, then every distinct ``▁``-prefixed prefix of every word (so llama.cpp's
    merges can build each word), then the words themselves.
    """

    words: tuple[str, ...]
    pieces: tuple[str, ...] = field(init=False)
    word_ids: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        pieces = [UNK, BOS, EOS] + [f"<0x{b:02X}>" for b in range(N_BYTES)]
        seen = set(pieces)
        for word in self.words:
            full = SPACE + word
            for end in range(1, len(full) + 1):
                piece = full[:end]
                if piece not in seen:
                    seen.add(piece)
                    pieces.append(piece)
        object.__setattr__(self, "pieces", tuple(pieces))
        index = {p: i for i, p in enumerate(pieces)}
        object.__setattr__(self, "word_ids", {w: index[SPACE + w] for w in self.words})

    @classmethod
    def build(cls, markers: Iterable[str], schemas: Mapping[str, int], max_objects: int) -> Vocabulary:
        words = list(dict.fromkeys([*markers, *ground_words(schemas, max_objects)]))
        bad = [w for w in words if not w or any(c.isspace() for c in w)]
        if bad:
            raise CodecError(f"vocabulary words must be non-empty and without spaces: {bad[:3]}")
        return cls(tuple(words))

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    def encode(self, words: Iterable[str]) -> list[int]:
        """Token ids of whole words (:class:`CodecError` for a word not in the vocabulary)."""
        try:
            return [self.word_ids[w] for w in words]
        except KeyError as exc:
            raise CodecError(f"word {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of token ids (pieces without the leading ``▁``)."""
        return [self.pieces[i].removeprefix(SPACE) for i in ids]

    def scores(self) -> list[float]:
        """Piece scores: longer pieces score higher, so merges always build whole words."""
        return [0.0 if i < N_SPECIAL + N_BYTES else float(len(p)) for i, p in enumerate(self.pieces)]

    def token_types(self) -> list[int]:
        types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL] + [TYPE_BYTE] * N_BYTES
        return types + [TYPE_NORMAL] * (len(self.pieces) - len(types))
