"""Serving code: decode audio, run the shipped ONNX model, answer JSON (see main.py)."""
import os

# onnxruntime >= 1.25 on Linux sends usage telemetry and writes a .ses file into the temp folder and
# a database into ~/.cache unless this is set before it initialises; a function does neither.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
