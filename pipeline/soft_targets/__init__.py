"""The ``soft_targets`` stage: the teachers' averaged softened posteriors as top-k soft targets."""
