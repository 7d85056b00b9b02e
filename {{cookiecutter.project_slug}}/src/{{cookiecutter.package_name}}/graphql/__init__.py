"""GraphQL at ``/api/v1/graphql`` (Strawberry), over the same core as every other transport.

Queries and mutations over HTTP, the ``chatStream`` subscription over WebSocket
(``graphql-transport-ws``). ``feature.install`` wires it into the app; ``schema``
holds the operations and ``types`` the GraphQL types, built from the REST API's
Pydantic models so that both APIs describe the same data.
"""
