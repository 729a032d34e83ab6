"""The ``export`` stage: the students as TorchScript, ONNX fp32 and int8, with parity and timing."""
