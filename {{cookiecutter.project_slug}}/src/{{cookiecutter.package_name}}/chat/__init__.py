"""The generation core: one engine that every transport calls.

Nothing in this package imports a web framework or a transport; transports depend
on the core, never the other way round (``lint-imports`` checks it).
"""
