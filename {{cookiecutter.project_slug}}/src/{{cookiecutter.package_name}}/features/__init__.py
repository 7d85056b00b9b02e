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
FEATURES: list[type[Feature]] = [
    # Each phase runs over them in this order.
{%- if cookiecutter.use_redis %}
    RedisFeature,
{%- endif %}
{%- if cookiecutter.use_jwt %}
    JwtFeature,
{%- endif %}
{%- if cookiecutter.use_grpc %}
    GrpcFeature,
{%- endif %}
{%- if cookiecutter.use_graphql %}
    GraphQLFeature,
{%- endif %}
]
