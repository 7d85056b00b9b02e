"""The generation core served over gRPC (``streaming.v1.ChatService``), beside HTTP.

``feature.install`` starts a ``grpc.aio`` server with the app and stops it with
the app; ``python -m <package>.grpc`` serves it alone. The stubs next to this
file are generated from ``protos/`` by ``scripts/gen_protos.py``.
"""
