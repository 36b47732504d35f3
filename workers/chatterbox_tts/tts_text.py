"""Splitting long text into chunks a TTS model can speak in one call.

Chatterbox generates at most 1000 speech tokens (40 s of audio) per call and degrades well before
that, so the community practice is chunks of about 250-300 characters cut at sentence boundaries,
then clause boundaries, then words (shared/docs/workers-models.md §1.6). Short sentences are packed
together so that a chunk carries natural prosody and the number of model calls stays low.

Every split keeps the text lossless: the pieces of a split concatenate back to their input, so the
only thing ever dropped is whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["MAX_CHUNK_CHARS", "split_for_streaming", "split_sentences", "split_text"]

#: Upper bound on a chunk's length in characters (after whitespace is collapsed).
MAX_CHUNK_CHARS = 280

# Non-ASCII punctuation is spelled as escapes so that look-alike characters stay visible in review.
_CLOSERS = "\"')]\u00bb\u201d\u2019\u300d\u300f\uff09"  # closing quotes and brackets, Latin and CJK
_CJK_ENDERS = "\u3002\uff01\uff1f"  # full-width full stop, ! and ?: no space follows them
_CJK_CLAUSE = "\u3001\uff0c\uff1b\uff1a"  # ideographic comma, full-width comma, semicolon, colon
_DASHES = "\u2013\u2014"  # en and em dash
_OPENERS = "\"'([\u00ab\u201c\u2018"  # opening quotes and brackets
_CLOSE = f"[{re.escape(_CLOSERS)}]*"

# A sentence ends at . ! ? or … (plus closing quotes/brackets) followed by whitespace, at CJK
# enders, or at a line break (headings and list items rarely end in a full stop).
_SENTENCE_END = re.compile(
    rf"[.!?\u2026]+[{re.escape(_CLOSERS)}]*\s+|[{_CJK_ENDERS}]+[{re.escape(_CLOSERS)}]*\s*|\n+"
)
_CLAUSE_END = re.compile(rf"[,;:{_DASHES}]\s+|\s-\s+|[{_CJK_CLAUSE}]\s*")
_WORD_END = re.compile(r"\s+")

# Words after which a single "." usually does not end a sentence. Imperfect by design: a missed
# boundary only makes one piece longer, and long pieces are split further anyway.
_ABBREVIATION_WORDS = (
    "mr mrs ms dr prof sr jr st mt vs etc fig no nos vol ch sec approx dept est inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_DOTTED_ABBREVIATION = re.compile(r"(?:\w\.)+\w")  # e.g, i.e, U.S


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Cut text into chunks of at most `max_chars` characters, each stripped and single-spaced.

    Whole sentences are packed together while they fit; a longer sentence is cut at clause
    boundaries, then between words, and a single word longer than the limit is cut anywhere.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    chunks: list[str] = []
    _pack(_split_keep(_normalize(text), _SENTENCE_END, _is_sentence_end), max_chars, 0, chunks)
    return chunks


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, stripped and single-spaced, without packing."""
    pieces = _split_keep(_normalize(text), _SENTENCE_END, _is_sentence_end)
    return [s for s in (_squash(p) for p in pieces) if s]


# Separators tried in order for a piece that is still too long; after the last one, cut by length.
_LEVELS: tuple[re.Pattern[str], ...] = (_CLAUSE_END, _WORD_END)


def _pack(pieces: list[str], max_chars: int, level: int, out: list[str]) -> None:
    current = ""
    for piece in pieces:
        if len(_squash(current + piece)) <= max_chars:
            current += piece
            continue
        if _squash(current):
            out.append(_squash(current))
        current = ""
        if len(_squash(piece)) <= max_chars:
            current = piece
        elif level < len(_LEVELS):
            _pack(_split_keep(piece, _LEVELS[level]), max_chars, level + 1, out)
        else:
            word = _squash(piece)
            out.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    if _squash(current):
        out.append(_squash(current))


def _split_keep(
    text: str, separator: re.Pattern[str], accept: Callable[[str, re.Match[str]], bool] | None = None
) -> list[str]:
    """Cut after each separator match; the pieces concatenate back to `text`."""
    pieces: list[str] = []
    start = 0
    for match in separator.finditer(text):
        if match.end() <= start or (accept is not None and not accept(text, match)):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _is_sentence_end(text: str, match: re.Match[str]) -> bool:
    if not match.group().startswith(".") or match.group().rstrip().rstrip(_CLOSERS) != ".":
        return True  # "!", "?", "...", CJK enders and line breaks always end a sentence
    word = text[: match.start()].rsplit(None, 1)[-1] if text[: match.start()].strip() else ""
    word = word.lstrip(_OPENERS)
    if word.lower() in _ABBREVIATIONS or _DOTTED_ABBREVIATION.fullmatch(word):
        return False
    return not (len(word) == 1 and word.isupper())  # an initial, as in "J. Smith"


def _normalize(text: str) -> str:
    # Keep line breaks (they are boundaries) but collapse every other run of whitespace.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r" *\n[\s]*", "\n", text).strip()


def _squash(text: str) -> str:
    return " ".join(text.split())


def split_for_streaming(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Like split_text, but the first sentence is a chunk of its own.

    When parts are streamed, the listener waits only for the first chunk: a single sentence is
    spoken sooner than a packed chunk of several, and the rest is packed as usual.
    """
    sentences = split_sentences(text)
    if len(sentences) <= 1:
        return split_text(text, max_chars)
    return split_text(sentences[0], max_chars) + split_text(" ".join(sentences[1:]), max_chars)
