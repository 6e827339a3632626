"""Model package: manifest, integrity check, featurizing and the ONNX session."""
