"""classifier-training: train ResNet image classifiers and ship them as ONNX."""

__version__ = "0.1.0"
