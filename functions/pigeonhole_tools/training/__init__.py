"""Model building: train, export to ONNX, quantize, evaluate and package. Never ships to Lambda.

Training-only dependencies (scikit-learn, skl2onnx, onnx) are imported from this package only, so
the Lambda package (`pigeonhole`) never needs them.
"""
