"""Pigeonhole: the code that ships to AWS Lambda.

Only runtime dependencies (Powertools, boto3, numpy, onnxruntime) may be imported from this
package; training and local-emulation code lives in ``pigeonhole_tools``.
"""

__version__ = "0.1.0"
