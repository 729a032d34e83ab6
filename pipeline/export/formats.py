"""The ``export`` stage: the distilled student as TorchScript, ONNX fp32 and ONNX int8.

Every exported graph takes raw fbank ``feats (N, T, n_mels)`` float32 and
``lengths (N,)`` int64 (CMVN is inside the model) and returns
``logits (N, T', V)`` and ``out_lengths (N,)``; batch and time axes are dynamic.

Output layout (``export/``)::

    student.torchscript.pt   TorchScript trace (dynamic batch and time)
    student.onnx             ONNX fp32 (dynamo exporter, one self-contained file)
    student.int8.onnx        onnxruntime dynamic quantization (int8 weights) of student.onnx
    tokenizer.model          the sentencepiece model (id 0 = CTC blank)
    lexicon.txt              the train transcripts' words, spelled in tokenizer pieces
    lm.arpa                  their word n-gram LM (when decoding.decoders has lexicon+lm)
    config.json              sample rate and fbank settings the model was trained on, and its
                             decoders: the default, beam size, LM weight and word score

What is exported is :class:`pipeline.deploy.inference.DeployConformer`, an inference-only
rewrite of the trained model with the same weights and fewer graph ops (a small
student at batch 1 is bound by per-op overhead; the rewrite made the int8 model
about 13% faster, README "Results").

Parity is checked before anything is kept: TorchScript and ONNX fp32 logits must
match eager PyTorch within ``export.parity_atol`` on every test utterance, and
the int8 model's greedy-decoding test WER must be within
``export.int8_wer_tolerance`` of eager's. A failed check raises
:class:`ExportParityError`.

The LM weight and word score of the ``lexicon+lm`` decoder are chosen on dev: every pair of
``decoding.grid`` decodes the model's dev logits with the beam and the LM, and the lowest
dev WER (ties: the earlier pair) ships in ``config.json`` (:func:`choose_lm_weights`). The
deployed runtimes' test WER with the default decoder, with its paired-bootstrap interval,
is :func:`deployed_wer`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from pipeline.bootstrap import paired_bootstrap, percentile_interval
from pipeline.config import DecodingConfig, EvaluateConfig, ExportConfig
from pipeline.deploy.inference import DeployConformer
from pipeline.deploy.runtime import (
    CONFIG,
    CONFIG_FORMAT,
    MIN_FRAMES,
    ONNX_FP32,
    ONNX_INT8,
    STREAMING,
    TOKENIZER,
    TORCHSCRIPT,
    Runner,
    as_batch,
    jit_warnings_off,
    onnx_runner,
    single_thread,
    torch_runner,
    torchscript_runner,
)
from pipeline.errors import MissingError
from pipeline.io import read_jsonl, write_json
from pipeline.model.conformer import ConformerCTC
from pipeline.model.decoding import LEXICON, LM, Decoder, Greedy, make_decoder
from pipeline.store import Store
from pipeline.wer import score, utterance_errors

log = logging.getLogger(__name__)


class ExportParityError(RuntimeError):
    """An exported model does not reproduce the eager PyTorch model."""


def export_torchscript(model: torch.nn.Module, path: Path) -> None:
    """Write a TorchScript trace of ``model`` that keeps batch and time symbolic.

    The forward pass has no data-dependent shapes, so tracing records sizes as
    graph ops; ``check_inputs`` at another batch size and length (and the
    parity check on every test utterance) catch any size baked in as a constant.
    """
    model.eval()
    example = (torch.randn(2, 400, model.n_mels), torch.tensor([400, 300]))
    other = (torch.randn(3, 123, model.n_mels), torch.tensor([123, 50, 100]))
    with jit_warnings_off():
        # The tracer warnings come from shape assertions inside multi-head attention.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_inputs=[other])
        torch.jit.save(traced, str(path))


def export_onnx(model: torch.nn.Module, path: Path, opset: int) -> None:
    """Write ``model`` as one self-contained ONNX file with dynamic batch and time axes."""
    model.eval()
    feats = torch.randn(2, 400, model.n_mels)
    lengths = torch.tensor([400, 300])
    batch = torch.export.Dim("batch", min=1, max=1024)
    time = torch.export.Dim("time", min=MIN_FRAMES, max=1_000_000)
    # The dynamo exporter keeps the time axis symbolic through the attention reshapes,
    # which the legacy tracer bakes in as constants.
    with quiet_loggers("onnx_ir", "onnxscript"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
        torch.onnx.export(
            model,
            (feats, lengths),
            str(path),
            input_names=["feats", "lengths"],
            output_names=["logits", "out_lengths"],
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
            dynamic_shapes={"feats": {0: batch, 1: time}, "lengths": {0: batch}},
        )


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of third-party loggers (``""`` is the root) for the block's duration."""
    loggers = [logging.getLogger(n) if n else logging.getLogger() for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, before):
            lg.setLevel(lvl)


# Ops whose weights go to int8. Only MatMul (attention projections, feed-forward, the
# convolution module's pointwise layers): onnxruntime's ConvInteger is slower than its
# float Conv on the CPU, and quantizing the subsampling convolutions made the whole int8
# student 2x slower than fp32; with MatMul alone it is faster than fp32 (README, Export).
INT8_OPS = ["MatMul"]


def quantize_int8(src: Path, dst: Path) -> None:
    """onnxruntime dynamic quantization: int8 MatMul weights, activations quantized on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs one INFO line per tensor it leaves in float, on the root logger.
    with quiet_loggers("", level=logging.ERROR):
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=INT8_OPS)


def max_logit_diff(reference: Runner, candidate: Runner, examples: Sequence[np.ndarray]) -> float:
    """Largest absolute logit difference over ``examples`` (each ``(T, F)``, run one at a time)."""
    worst = 0.0
    for feats in examples:
        x, n = as_batch(feats)
        ref, ref_n = reference(x, n)
        got, got_n = candidate(x, n)
        if ref.shape != got.shape or not np.array_equal(ref_n, got_n):
            return float("inf")
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def all_logits(runner: Runner, examples: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Logits ``(T', V)`` of each of ``examples``, one utterance at a time."""
    return [torch.from_numpy(runner(*as_batch(feats))[0][0]) for feats in examples]


def decode_all(decoder: Decoder, logits: Sequence[torch.Tensor]) -> list[str]:
    """``decoder``'s transcript of each utterance's logits ``(T', V)``."""
    return [decoder(x[None], torch.tensor([len(x)]))[0] for x in logits]


def transcripts(runner: Runner, examples: Sequence[np.ndarray], decoder: Decoder) -> list[str]:
    """``decoder``'s transcripts of ``examples``, one utterance at a time."""
    return decode_all(decoder, all_logits(runner, examples))


def decoding_entry(cfg: DecodingConfig, lm_weight: float, word_score: float) -> dict[str, Any]:
    """``config.json``'s ``decoding``: the decoders a runtime may use, the default, and the files
    and settings of the beam ones."""
    beam = any(d != "greedy" for d in cfg.decoders)
    return {
        "decoders": list(cfg.decoders),
        "default": cfg.default,
        "beam_size": cfg.beam_size,
        "lexicon": LEXICON if beam else None,
        "lm": LM if "lexicon+lm" in cfg.decoders else None,
        "lm_weight": lm_weight,
        "word_score": word_score,
    }


def choose_lm_weights(
    logits: Sequence[torch.Tensor],
    refs: Sequence[str],
    sp: spm.SentencePieceProcessor,
    resources: Path,
    cfg: DecodingConfig,
) -> dict[str, Any]:
    """The ``decoding.grid`` pair with the lowest dev WER of ``lexicon+lm`` on ``logits`` (dev,
    ``(T', V)`` each): ``{"lm_weight", "word_score", "wer", "grid": [{lm_weight, word_score,
    wer}, ...]}``. ``resources`` holds ``lexicon.txt`` and ``lm.arpa`` (the ``lm`` stage)."""
    grid = []
    for lm_weight in cfg.grid.lm_weight:
        for word_score in cfg.grid.word_score:
            decoder = make_decoder(
                "lexicon+lm",
                sp,
                lexicon=resources / LEXICON,
                lm=resources / LM,
                beam_size=cfg.beam_size,
                lm_weight=lm_weight,
                word_score=word_score,
            )
            wer = score(list(refs), decode_all(decoder, logits))[0]
            grid.append({"lm_weight": lm_weight, "word_score": word_score, "wer": wer})
            log.info("dev grid: lm_weight %g, word_score %g: WER %.4f", lm_weight, word_score, wer)
    best = min(grid, key=lambda g: g["wer"])  # the first of equals
    return {**best, "grid": grid}


def deployed_wer(
    texts: Sequence[str], refs: Sequence[str], decoder: str, cfg: EvaluateConfig
) -> dict[str, Any]:
    """Test WER of a runtime's ``texts`` with its paired-bootstrap interval (``evaluate``'s
    resamples: same samples, seed and confidence)."""
    errors = utterance_errors(list(refs), list(texts))
    draws = paired_bootstrap({"x": errors.words}, errors.ref_words, cfg.bootstrap_samples, cfg.bootstrap_seed)
    lo, hi = percentile_interval(draws["x"], cfg.confidence)
    return {"decoder": decoder, "wer": round(errors.wer, 4), "wer_ci": [round(lo, 6), round(hi, 6)]}


def write_config(
    path: Path,
    features_meta: dict[str, Any],
    vocab_size: int,
    decoding: dict[str, Any],
    streaming: dict[str, Any] | None = None,
) -> None:
    """``config.json``: what a runtime needs besides the graph to turn audio into text."""
    write_json(
        path,
        {
            "format": CONFIG_FORMAT,
            "sample_rate": int(features_meta["sample_rate"]),
            "features": {
                k: features_meta[k] for k in ("n_mels", "frame_shift_ms", "frame_length_ms", "dither")
            },
            "vocab_size": vocab_size,
            "blank": 0,
            "min_frames": MIN_FRAMES,
            "inputs": {"feats": "(N, T, n_mels) float32 raw fbank", "lengths": "(N,) int64"},
            "outputs": {"logits": "(N, T', vocab_size) float32", "out_lengths": "(N,) int64"},
            "models": {"onnx": ONNX_FP32, "int8": ONNX_INT8, "torchscript": TORCHSCRIPT},
            "tokenizer": TOKENIZER,
            "decoding": decoding,
            **({"streaming": streaming} if streaming else {}),
        },
    )


def write_artifacts(
    model: ConformerCTC,
    out_dir: Path,
    tokenizer: Path,
    features_meta: dict[str, Any],
    opset: int,
    decoding: dict[str, Any],
    resources: Path,
) -> None:
    """Write every file of the export layout into the existing directory ``out_dir``.

    ``model`` is the trained model; what is written is its :class:`DeployConformer`.
    ``decoding``: the config entry (:func:`decoding_entry`); ``resources``: the directory
    holding the lexicon and LM files it names (the ``lm`` stage's ``data/lm``).
    """
    deployable = DeployConformer(model)
    log.info("export: TorchScript")
    export_torchscript(deployable, out_dir / TORCHSCRIPT)
    log.info("export: ONNX fp32 (opset %d)", opset)
    export_onnx(deployable, out_dir / ONNX_FP32, opset)
    log.info("export: ONNX int8 (dynamic quantization)")
    quantize_int8(out_dir / ONNX_FP32, out_dir / ONNX_INT8)
    streaming = None
    if model.cfg.streaming:
        from pipeline.deploy.streaming import export_streaming_onnx

        log.info("export: streaming ONNX (one chunk per call, caches as inputs and outputs)")
        streaming = export_streaming_onnx(model, out_dir / STREAMING, opset)
    shutil.copy(tokenizer, out_dir / TOKENIZER)
    for name in (decoding["lexicon"], decoding["lm"]):
        if name:
            shutil.copy(resources / name, out_dir / name)
    write_config(out_dir / CONFIG, features_meta, model.vocab_size, decoding, streaming)


def check_parity(
    model: ConformerCTC,
    out_dir: Path,
    examples: Sequence[np.ndarray],
    refs: Sequence[str],
    sp: spm.SentencePieceProcessor,
    cfg: ExportConfig,
    label: str = "student.distilled",
) -> dict[str, Any]:
    """Compare the exported files in ``out_dir`` with eager ``model`` on ``examples``.

    Returns ``{"parity": {...}, "wer": {"<label>.<format>": ...}}``; raises
    :class:`ExportParityError` naming the file and the measured gap when a check fails.
    """
    with single_thread():
        model.eval()
        eager = torch_runner(model)
        scripted = torchscript_runner(out_dir / TORCHSCRIPT)
        fp32, int8 = onnx_runner(out_dir / ONNX_FP32), onnx_runner(out_dir / ONNX_INT8)
        parity = {
            "torchscript_max_abs_diff": max_logit_diff(eager, scripted, examples),
            "onnx_max_abs_diff": max_logit_diff(eager, fp32, examples),
            "utterances": len(examples),
            "atol": cfg.parity_atol,
        }
        for key, name in (("torchscript_max_abs_diff", TORCHSCRIPT), ("onnx_max_abs_diff", ONNX_FP32)):
            if not parity[key] <= cfg.parity_atol:
                raise ExportParityError(
                    f"{out_dir / name}: parity failed, max |logit diff| vs eager PyTorch "
                    f"{parity[key]:.3g} > export.parity_atol {cfg.parity_atol}"
                )
        greedy = Greedy(sp)
        wer = {
            name: score(list(refs), transcripts(runner, examples, greedy))[0]
            for name, runner in (("torch", eager), ("torchscript", scripted), ("onnx", fp32), ("int8", int8))
        }
        parity["int8_wer_delta"] = round(wer["int8"] - wer["torch"], 4)
        if abs(parity["int8_wer_delta"]) > cfg.int8_wer_tolerance:
            raise ExportParityError(
                f"{out_dir / ONNX_INT8}: int8 test WER {wer['int8']:.4f} differs from eager "
                f"{wer['torch']:.4f} by more than export.int8_wer_tolerance {cfg.int8_wer_tolerance}"
            )
        if model.cfg.streaming:
            parity["streaming"] = _check_streaming(out_dir, examples, fp32, cfg)
        log.info("export parity: %s; test WER %s", parity, wer)
        return {"parity": parity, "wer": {f"{label}.{k}": v for k, v in wer.items()}}


def _check_streaming(out_dir: Path, examples: Sequence[np.ndarray], fp32: Runner, cfg: ExportConfig) -> dict:
    """The streaming graph, chunk by chunk, must give the offline graph's logits and exactly its
    greedy transcripts on every example."""
    from pipeline.deploy.streaming import StreamingModel, streaming_parity

    offline = [fp32(*as_batch(f))[0][0] for f in examples]
    result = streaming_parity(StreamingModel.load(out_dir / STREAMING), examples, offline)
    if result["transcripts_differ"] or not result["max_abs_logit_diff"] <= cfg.parity_atol:
        raise ExportParityError(
            f"{out_dir / STREAMING}: streaming decode differs from the offline graph on "
            f"{result['transcripts_differ']} of {result['utterances']} utterances "
            f"(max |logit diff| {result['max_abs_logit_diff']:.3g})"
        )
    return result


def load_split(features_dir: Path, manifest: Path) -> list[dict[str, Any]]:
    """The split's utterances in manifest order: ``id``, ``feats`` (T, F), ``text``, ``duration``."""
    store = Store(features_dir)
    rows = read_jsonl(manifest)
    missing = [r["id"] for r in rows if r["id"] not in store]
    if missing:
        raise MissingError(
            f"{manifest}: {len(missing)} utterances have no features in {store.dir}, e.g. {missing[:3]}"
        )
    if not rows:
        raise ValueError(f"{manifest}: no utterances")
    return [
        {
            "id": r["id"],
            "feats": store.get(r["id"], "fbank"),
            "text": r["text"],
            "duration": float(r["duration"]),
        }
        for r in rows
    ]
