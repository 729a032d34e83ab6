"""CTC decoding: greedy best path, beam search over a lexicon, and the same beam with a word LM.

Three decoders behind one interface (``decoding.decoders`` in ``params.yaml``), used by the
evaluate stage, the export stage's WER scoring, ``asr-distill transcribe`` and streaming:

* ``greedy``: the best path with repeats merged and blanks dropped, then sentencepiece
  detokenization;
* ``lexicon``: torchaudio's CTC beam-search decoder (flashlight-text) over a lexicon of the
  words of the train transcripts, each spelled by the sentencepiece model, and no language
  model: a hypothesis consists only of words the training set contains (a closed-vocabulary
  read-speech task such as WSJ 5k). It fixes greedy misspellings (``book -> bok``) without
  any knowledge of word order;
* ``lexicon+lm``: the same beam, scored with the word n-gram LM of the train transcripts
  (:mod:`pipeline.lm.ngram`, an ARPA file) at ``lm_weight``, plus ``word_score`` per word.

Every decoder decodes a batch (``decoder(logits, lengths)``) or a stream of chunks
(``decoder.stream()``: ``step(logits)`` per chunk, ``text`` so far, ``finish()``); the
beam decoders stream with flashlight's incremental search (``decode_begin``,
``decode_step``, ``decode_end``), so a stream's final text is the batch decode's.

Usage::

    decoder = make_decoder("lexicon+lm", sp, lexicon=Path("lexicon.txt"), lm=Path("lm.arpa"),
                           beam_size=20, lm_weight=1.0, word_score=0.0)
    texts = decoder(logits, lengths)   # logits (N, T, V), lengths (N,)
    stream = decoder.stream()
    for chunk in chunks:               # logits (T_i, V)
        stream.step(chunk); stream.text
    text = stream.finish()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.model.ctc import greedy_decode
from pipeline.tokens import BLANK

DECODERS = ("greedy", "lexicon", "lexicon+lm")
SILENCE = "|"  # an extra token the beam decoder needs as word separator; the models never emit it
LEXICON = "lexicon.txt"
LM = "lm.arpa"


def write_lexicon(words: Iterable[str], sp: spm.SentencePieceProcessor, path: Path) -> int:
    """One ``word piece piece ...`` line per distinct word the tokenizer can spell (a word
    with a character outside its pieces cannot be emitted anyway); returns the word count."""
    lines = []
    for word in sorted(set(words)):
        ids = sp.encode(word)
        if ids and sp.unk_id() not in ids:
            lines.append(f"{word} {' '.join(sp.id_to_piece(i) for i in ids)}\n")
    path.write_text("".join(lines))
    return len(lines)


@dataclass
class GreedyStream:
    """Greedy decoding chunk by chunk: repeats merge across chunk boundaries too."""

    sp: spm.SentencePieceProcessor
    tokens: list[int] = field(default_factory=list)
    previous: int = BLANK  # the last frame's best token

    def step(self, logits: np.ndarray) -> None:
        """Take the next chunk's logits ``(T, V)``."""
        for token in np.asarray(logits).argmax(-1).tolist():
            if token != BLANK and token != self.previous:
                self.tokens.append(token)
            self.previous = token

    @property
    def text(self) -> str:
        return self.sp.decode(self.tokens)

    def finish(self) -> str:
        return self.text


@dataclass
class Greedy:
    """Best-path decoding, then sentencepiece detokenization."""

    sp: spm.SentencePieceProcessor
    name: str = "greedy"

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return [self.sp.decode(ids) for ids in greedy_decode(logits, lengths)]

    def stream(self) -> GreedyStream:
        return GreedyStream(self.sp)


def beam_input(logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Log-probabilities ``(..., T, V + 1)`` for the beam: the silence token's column never wins."""
    logits = torch.as_tensor(logits)
    log_probs = torch.log_softmax(logits.detach().float().cpu(), dim=-1)
    never = torch.full((*log_probs.shape[:-1], 1), -1e4)
    return torch.cat([log_probs, never], dim=-1).contiguous()


class BeamStream:
    """Incremental beam search: flashlight keeps its beam between chunks. The text so far is
    the words of the best hypothesis at the last frame (flashlight's ``get_best_hypothesis``,
    which torchaudio's wrapper does not expose); the final text is torchaudio's
    ``get_final_hypothesis``, as the batch decode."""

    def __init__(self, beam: Any) -> None:
        self.beam = beam
        self.beam.decode_begin()
        self.words: list[str] = []

    def step(self, logits: np.ndarray) -> None:
        """Take the next chunk's logits ``(T, V)``."""
        if len(logits):
            self.beam.decode_step(beam_input(logits))  # (T, V + 1)
            best = self.beam.decoder.get_best_hypothesis()
            self.words = list(self.beam._to_hypo([best])[0].words)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def finish(self) -> str:
        self.beam.decode_end()
        final = self.beam.get_final_hypothesis()
        self.words = list(final[0].words) if final else []
        return self.text


class Beam:
    """Beam search over a lexicon with an optional ARPA LM (torchaudio's ``ctc_decoder``)."""

    def __init__(
        self,
        name: str,
        sp: spm.SentencePieceProcessor,
        lexicon: Path,
        lm: Path | None,
        beam_size: int,
        lm_weight: float,
        word_score: float,
    ) -> None:
        from torchaudio.models.decoder import ctc_decoder

        self.name, self.sp = name, sp
        self.settings = {"beam_size": beam_size, "lm_weight": lm_weight, "word_score": word_score}
        self.beam = ctc_decoder(
            lexicon=str(lexicon),
            tokens=[sp.id_to_piece(i) for i in range(sp.get_piece_size())] + [SILENCE],
            lm=None if lm is None else str(lm),
            beam_size=beam_size,
            blank_token=sp.id_to_piece(BLANK),
            sil_token=SILENCE,
            unk_word=sp.id_to_piece(sp.unk_id()),
            lm_weight=lm_weight,
            word_score=word_score,
            sil_score=0.0,
        )

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        results = self.beam(beam_input(logits), lengths.cpu().to(torch.int32))  # (N, T, V + 1)
        return [" ".join(r[0].words) if r else "" for r in results]

    def stream(self) -> BeamStream:
        """One stream at a time per decoder: the beam lives in the decoder."""
        return BeamStream(self.beam)


Decoder = Greedy | Beam


def make_decoder(
    name: str,
    sp: spm.SentencePieceProcessor,
    *,
    lexicon: Path | None = None,
    lm: Path | None = None,
    beam_size: int,
    lm_weight: float,
    word_score: float,
) -> Decoder:
    """The decoder ``name`` (one of :data:`DECODERS`): ``lexicon`` names the lexicon file the
    beam decoders need, ``lm`` the ARPA file ``lexicon+lm`` needs; the lexicon decoder scores
    words with 0, as it has no LM to weigh against."""
    if name == "greedy":
        return Greedy(sp)
    if name not in DECODERS:
        raise ValueError(f"unknown decoder '{name}'; known: {', '.join(DECODERS)}")
    if lexicon is None or not Path(lexicon).is_file():
        raise FileNotFoundError(f"decoder {name} needs a lexicon file, {lexicon} not found")
    if not Path(lexicon).read_text().strip():
        raise ValueError(f"{lexicon}: an empty lexicon (no word of the train transcripts can be spelled)")
    if name == "lexicon":
        return Beam(name, sp, Path(lexicon), None, beam_size, 0.0, 0.0)
    if lm is None or not Path(lm).is_file():
        raise FileNotFoundError(f"decoder {name} needs an ARPA language model, {lm} not found")
    return Beam(name, sp, Path(lexicon), Path(lm), beam_size, lm_weight, word_score)


def export_settings(config: dict[str, Any], directory: Path, name: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`make_decoder` for decoder ``name`` (None: the default)
    of an export directory, from its ``config.json``'s ``decoding`` entry."""
    decoding = config["decoding"]
    name = name or decoding["default"]
    if name not in decoding["decoders"]:
        raise ValueError(
            f"{directory}: decoder '{name}' not exported; it has {', '.join(decoding['decoders'])}"
        )
    files = {k: directory / decoding[k] for k in ("lexicon", "lm") if decoding.get(k)}
    return {
        "name": name,
        **files,
        "beam_size": decoding["beam_size"],
        "lm_weight": decoding["lm_weight"],
        "word_score": decoding["word_score"],
    }
