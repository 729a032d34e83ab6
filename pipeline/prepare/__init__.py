"""The ``prepare`` stage: the synthetic corpus or imported corpora as WAV files and manifests."""
