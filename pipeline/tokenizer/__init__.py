"""The ``tokenizer`` stage: a sentencepiece model over the train transcripts."""
