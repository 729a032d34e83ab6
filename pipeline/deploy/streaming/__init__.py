"""A streaming student run chunk by chunk, as audio arrives.

A streaming model (``model.chunk_frames = C > 0``, ``model.left_frames = L``) attends
within its own chunk of ``C`` output frames and ``L`` frames before it, and its depthwise
convolutions are causal (:mod:`pipeline.model.conformer`). Its outputs for a chunk therefore depend
on no later audio, and :class:`StreamingStep` computes them one chunk per call from

* ``feats``: the chunk's fbank window, ``4 C + 3`` frames: the subsampling convolutions
  (kernel 3, stride 2, twice) turn ``4 C + 3`` frames into exactly ``C``, and consecutive
  windows overlap by 3 frames;
* ``att_cache`` ``(layers, 2, heads, L, d_head)``: each layer's attention keys and values
  of the last ``L`` frames;
* ``conv_cache`` ``(layers, kernel - 1, channels)``: each layer's depthwise-convolution
  input over the last ``kernel - 1`` frames;
* ``cached`` ``(1,)``: how many of the ``L`` cached frames exist (fewer at the start);
* ``valid`` ``(1,)``: how many of the chunk's ``C`` frames are audio (fewer at the end),

and returns the chunk's ``logits (1, C, V)`` and the next caches. Chunk by chunk, the
logits equal the full-utterance forward pass of the same model (tested), and the decoder
(:mod:`pipeline.model.decoding`: greedy, or flashlight's incremental beam search) takes them chunk
by chunk, so a stream's final text is the offline decode's with the same decoder.

Latency: a chunk's last output frame needs fbank frames up to ``4 C + 2`` of its window,
i.e. ``2 * frame_shift + frame_length`` of audio past the chunk's end; the algorithmic
latency is ``C * 40 ms`` plus that lookahead (:func:`algorithmic_latency_ms`).

Usage::

    stream = StreamingModel.load(Path("export/streaming/streaming.onnx"))
    decoder = stream.stream()
    for block in audio_blocks:           # any size, e.g. 100 ms of samples
        partial = decoder.accept(block)  # text so far
    text = decoder.finish()

Layout: :mod:`.step` (the step module), :mod:`.onnx` (its export), :mod:`.fbank`
(incremental fbank), :mod:`.decoder` (model and decoder), :mod:`.measure` (parity, timing).
"""

from pipeline.deploy.streaming.decoder import StreamDecoder, StreamingModel
from pipeline.deploy.streaming.fbank import StreamingFbank
from pipeline.deploy.streaming.measure import streaming_parity, time_streaming
from pipeline.deploy.streaming.onnx import (
    STREAM_INPUTS,
    STREAM_OUTPUTS,
    example_inputs,
    export_streaming_onnx,
)
from pipeline.deploy.streaming.step import (
    OVERLAP,
    SUBSAMPLING,
    StreamingStep,
    algorithmic_latency_ms,
    window_frames,
)

__all__ = [
    "OVERLAP",
    "STREAM_INPUTS",
    "STREAM_OUTPUTS",
    "SUBSAMPLING",
    "StreamDecoder",
    "StreamingFbank",
    "StreamingModel",
    "StreamingStep",
    "algorithmic_latency_ms",
    "example_inputs",
    "export_streaming_onnx",
    "streaming_parity",
    "time_streaming",
    "window_frames",
]
