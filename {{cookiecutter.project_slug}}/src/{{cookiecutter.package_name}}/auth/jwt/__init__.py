"""``use_jwt``: bearer tokens on ``/api/v1``, token issuing, users and refresh tokens.

``verify.py`` checks tokens (HS* secrets, or keys from a JWK Set in
``keys.py``); ``middleware.py`` and ``authenticator.py`` use it for HTTP and
for the other transports; ``tokens.py``, ``routes.py``, ``users.py`` and
``cli.py`` issue tokens to the users in the SQLite database. ``features/jwt.py``
installs it.
"""
