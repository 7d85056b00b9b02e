"""The rendered default variant's own app with its middleware stack removed (``ours-bare``).

Builds the app with ``create_app()`` from ``streaming_service.main`` (the default
render's package, on PYTHONPATH next to this folder), as ``ours`` is built by
uvicorn's ``--factory``, and empties ``app.user_middleware`` before the first
request. Starlette builds the middleware stack lazily, on the first call (the
lifespan's), so clearing the list here gives the same routes, dependencies,
exception handlers and lifespan with no user middleware: only what Starlette and
FastAPI always add (``ServerErrorMiddleware``, ``ExceptionMiddleware`` and the
like) remains. ``ours`` vs ``ours-bare`` is what the middleware stack costs.
"""

from __future__ import annotations

from streaming_service.main import create_app  # type: ignore[import-not-found]

app = create_app()
if app.middleware_stack is not None:
    raise RuntimeError("the middleware stack was built before it could be emptied")
app.user_middleware.clear()
