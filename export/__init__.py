"""Training, evaluation and Keras -> ONNX export of the genre CNN; writes models/. Never deployed."""
import inference  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime loads)
