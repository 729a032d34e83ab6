"""The ``features`` stage: log-mel filterbanks in resumable sharded fp16 stores."""
