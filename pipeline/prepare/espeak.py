"""Speech synthesis with espeak-ng, loaded from the ``espeakng-loader`` wheel.

The wheel ships ``libespeak-ng.so`` and all voices, so ``pip install`` is the
whole set-up. We drive the C API through ctypes in synchronous mode: each
``espeak_Synth`` call delivers its samples to a callback before returning.

espeak-ng is not a pure function of its inputs: a static pitch-flutter phase
(``Flutter_ix`` in wavegen.c) and other wavegen state carry over from one
utterance to the next, so the same request gives different samples depending
on what was spoken before in the process. For reproducible corpora use
:func:`speak_batches`: it speaks each batch in a fresh process, so a batch's
audio depends only on the batch.

Usage::

    synth = Espeak()
    wav = synth.speak("hello world", voice="en-US+f2", rate=170, pitch=50)
    # wav: float32 numpy array at synth.sample_rate (22050 Hz)

    for sample_rate, wavs in speak_batches([[("hello", "en+m1", 170, 50, 0)]], workers=1):
        ...
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4

# espeak-ng keeps global state: one instance per process, serialised by a lock.
_LOCK = threading.Lock()
_INSTANCE: Espeak | None = None

SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or refused a request."""


def available_variants() -> list[str]:
    """Voice variant names shipped with the wheel (``m1``, ``f3``, ``klatt2``, ``Andy``...).

    espeak-ng silently ignores an unknown ``+variant`` suffix, so callers check
    names against this list instead of trusting ``espeak_SetVoiceByName``.
    """
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


class Espeak:
    """A process-wide espeak-ng synthesizer (the library holds global state)."""

    def __new__(cls) -> Espeak:
        global _INSTANCE
        if _INSTANCE is None:
            _INSTANCE = super().__new__(cls)
            _INSTANCE._init()
        return _INSTANCE

    def _init(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}); data path {data!r}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = SYNTH_CALLBACK(self._on_audio)  # keep a reference alive
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def _on_audio(self, wav, numsamples, events) -> int:  # noqa: ANN001 - ctypes callback
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0

    def speak(
        self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50, seed: int = 0
    ) -> np.ndarray:
        """Synthesize ``text``; returns float32 samples in [-1, 1] at ``sample_rate``.

        ``seed`` seeds espeak-ng's noise generator (breathy voices, fricatives);
        flutter state still carries over between calls (see the module docstring).
        """
        with _LOCK:
            self._lib.espeak_ng_SetRandSeed(int(seed))
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice '{voice}'")
            self._lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
            self._lib.espeak_SetParameter(PARAM_RANGE, int(pitch_range), 0)
            self._chunks = []
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            err = self._lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise EspeakError(f"espeak_Synth failed with code {err} for text {text[:40]!r}")
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


Request = tuple[str, str, int, int, int]  # (text, voice, rate in words/minute, pitch 0-99, seed)


def speak_batch(requests: list[Request]) -> tuple[int, list[np.ndarray]]:
    """Speak ``requests`` in order in this process; returns (sample rate, waveforms)."""
    synth = Espeak()
    return synth.sample_rate, [
        synth.speak(text, voice, rate=rate, pitch=pitch, seed=seed)
        for text, voice, rate, pitch, seed in requests
    ]


def _speak_isolated(requests: list[Request]) -> tuple[int, list[np.ndarray]]:
    """Run :func:`speak_batch` in a fresh ``python -m pipeline.prepare.espeak`` process."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.prepare.espeak"],
        env=env,
        check=False,
        input=pickle.dumps(requests),
        capture_output=True,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise EspeakError(f"espeak-ng worker exited with {proc.returncode}: {' | '.join(tail)}")
    rate, pcm = pickle.loads(proc.stdout)
    return rate, [x.astype(np.float32) / 32768.0 for x in pcm]


def speak_batches(batches: list[list[Request]], workers: int = 1) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Speak every batch in its own fresh process (``workers`` at a time), yielding in order.

    A fresh process per batch resets espeak-ng's hidden state, so the audio of
    a batch is the same whatever ran before it and however many workers run.
    At most ``2 * workers`` batches are in flight, which bounds memory.
    """
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(pool.submit(_speak_isolated, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _worker() -> None:
    """``python -m pipeline.prepare.espeak``: speak one pickled batch from stdin, pickle int16 PCM
    to stdout."""
    rate, wavs = speak_batch(pickle.load(sys.stdin.buffer))
    pcm = [np.round(w * 32768.0).astype(np.int16) for w in wavs]
    pickle.dump((rate, pcm), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    _worker()
