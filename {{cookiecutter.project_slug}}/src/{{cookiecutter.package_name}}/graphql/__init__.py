"""GraphQL at ``/api/v1/graphql`` (Strawberry), over the same core as every other transport.

Queries and mutations over HTTP, the ``chatStream`` subscription over WebSocket
(``graphql-transport-ws``). ``features/graphql.py`` installs it; ``schema``
holds the operations and ``types`` the GraphQL types, built from the wire messages
the other transports share (``chat/messages.py``) so that both APIs describe the same data.
"""
