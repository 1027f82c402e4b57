"""Serving code: decode audio, cut segments, run the ONNX model. Never imports TensorFlow."""
