"""ONNX export of a trained model, with the training-time preprocessing inside the graph.

``mmoe.onnx.export.export`` (also ``mmoe.export``) writes the file; ``mmoe.onnx.metadata``
reads what a file says about itself without importing torch. Needs the ``onnx`` extra
(``pip install 'mmoe[onnx]'``).
"""
