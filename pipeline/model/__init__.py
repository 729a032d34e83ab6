"""The Conformer-CTC acoustic model, its CTC losses and decoders, spike timing and the ensemble."""
