"""The deployed student: inference-only model, runtimes, transcription and streaming."""
