"""The optional features chosen when this project was generated, in install order.

This list is the one place that selects features; see ``base.py`` for what a
feature may do and ``main.create_app`` for when.
"""

from __future__ import annotations

from .base import Feature
{% if cookiecutter.use_graphql -%}
from .graphql import GraphQLFeature
{% endif -%}
{% if cookiecutter.use_grpc -%}
from .grpc import GrpcFeature
{% endif -%}
{% if cookiecutter.use_jwt -%}
from .jwt import JwtFeature
{% endif -%}
{% if cookiecutter.use_redis -%}
from .redis import RedisFeature
{% endif %}
# Each phase runs over them in this order.
FEATURES: list[type[Feature]] = [{{ ["RedisFeature" if cookiecutter.use_redis else "", "JwtFeature" if cookiecutter.use_jwt else "", "GrpcFeature" if cookiecutter.use_grpc else "", "GraphQLFeature" if cookiecutter.use_graphql else ""] | select | join(", ") }}]
