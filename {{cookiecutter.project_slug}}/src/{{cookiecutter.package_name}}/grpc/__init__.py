"""The generation core served over gRPC (``streaming.v1.ChatService``), beside HTTP.

``features/grpc.py`` starts a ``grpc.aio`` server with the app and stops it with
the app; ``python -m <package> --no-http`` serves it alone. The stubs next to this
file are generated from ``protos/`` by ``scripts/gen_protos.py``.
"""
