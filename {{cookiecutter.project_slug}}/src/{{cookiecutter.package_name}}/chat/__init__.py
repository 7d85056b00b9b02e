"""The generation core: one engine that every transport calls.

Nothing in this package imports FastAPI, gRPC or Strawberry; transports depend on
the core, never the other way round.
"""
