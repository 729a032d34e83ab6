"""The ``lm`` stage: the lexicon and a word n-gram LM of the train transcripts."""
