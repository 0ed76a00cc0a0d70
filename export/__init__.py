"""RADON's export toolchain: checkpoint -> ONNX artifact (``exporter``), parity (``parity``), TensorRT (``trt``).

Submodules are imported on use; importing ``radon.export`` loads nothing heavy. See docs/export.md.
"""
