"""``mmoe serve``: an HTTP scoring server (FastAPI on uvicorn) around onnxruntime, without torch.

Needs the ``serve`` extra (``pip install 'mmoe[serve]'``). ``mmoe.serving.app.create_app`` builds
the app for an exported file; ``mmoe.serving.server.serve`` runs it.
"""
