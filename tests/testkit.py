"""Helpers shared by the tests: the one tiny model config, the environment for git/dvc commands,
CTC log-probabilities spelled frame by frame for the decoder tests, and the experiment scripts
loaded as modules.

Imported as ``from testkit import ...`` (pytest puts ``tests/`` on ``sys.path``, as for
``tiny_corpus`` and ``import_graph``).
"""

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

from pipeline.config import ModelConfig
from pipeline.model.conformer import ConformerCTC
from pipeline.tokens import BLANK

ROOT = Path(__file__).resolve().parents[1]

# The tests' tiny Conformer-CTC: one layer, 16 wide (about 20k parameters); a test overrides the
# fields it is about.
TINY = {
    "d_model": 16,
    "num_layers": 1,
    "num_heads": 2,
    "ffn_dim": 32,
    "conv_kernel": 3,
    "subsampling_channels": 4,
    "dropout": 0.0,
}
# Twice as wide with a longer convolution: enough capacity to fit the tiny corpus in training tests.
WIDER = {"d_model": 32, "ffn_dim": 64, "conv_kernel": 7, "subsampling_channels": 8}


def tiny_config(**overrides) -> ModelConfig:
    """:data:`TINY` with ``overrides`` (any :class:`ModelConfig` field)."""
    return ModelConfig(**{**TINY, **overrides})


def tiny_conformer(
    n_mels: int = 40, vocab_size: int = 30, seed: int = 0, cmvn: bool = True, **overrides
) -> ConformerCTC:
    """A :func:`tiny_config` model initialised after ``torch.manual_seed(seed)``, in eval mode;
    with ``cmvn`` its CMVN is mean 8, std 3 (roughly the scale of real log-mel fbank)."""
    torch.manual_seed(seed)
    model = ConformerCTC(tiny_config(**overrides), n_mels=n_mels, vocab_size=vocab_size)
    if cmvn:
        model.set_cmvn([8.0] * n_mels, [3.0] * n_mels)
    return model.eval()


def command_env(**extra: str) -> dict[str, str]:
    """``os.environ`` for subprocesses in a temporary repository: this interpreter's scripts
    (``dvc``, ``asr-distill``) first on ``PATH``, a git identity for commits, then ``extra``."""
    return {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
        **extra,
    }


def frames_of(sp, text: str, length: int) -> list[int]:
    """``text``'s pieces, each on one frame followed by a blank, padded with blanks to ``length``."""
    out = [f for i in sp.encode(text) for f in (i, BLANK)]
    assert len(out) <= length
    return out + [BLANK] * (length - len(out))


def mixture_logits(sp, texts_weights: list[tuple[str, float]], length: int) -> torch.Tensor:
    """(1, T, V) log-probabilities: frame t is ``text_k``'s frame t with probability ``weight_k``."""
    probs = torch.full((length, sp.get_piece_size()), 1e-6)
    for text, weight in texts_weights:
        for t, i in enumerate(frames_of(sp, text, length)):
            probs[t, i] += weight
    return (probs / probs.sum(-1, keepdim=True)).log()[None]


def load_experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` (a script, not a package) loaded as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
