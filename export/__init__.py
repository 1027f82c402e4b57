"""Training and Keras -> ONNX export: writes models/. Never imported by the function."""
