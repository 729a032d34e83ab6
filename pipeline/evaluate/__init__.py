"""The ``evaluate`` stage: WER of every model with intervals, the summary report and its plots."""
