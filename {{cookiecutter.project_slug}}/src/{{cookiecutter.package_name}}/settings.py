"""All configuration, read once from the environment and ``.env``.

``Settings`` is the service's own settings (``service_settings.py``) and those of
each enabled feature, which live beside its code. Every setting is documented in
``.env.example``. A bad value stops the service at start-up with one line that
names the variable (see ``load_settings``).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import ValidationError

{% if cookiecutter.use_jwt -%}
from .auth.jwt.settings import JwtSettings
{% endif -%}
{% if cookiecutter.use_graphql -%}
from .graphql.settings import GraphQLSettings
{% endif -%}
{% if cookiecutter.use_grpc -%}
from .grpc.settings import GrpcSettings
{% endif -%}
{% if cookiecutter.use_redis -%}
from .ratelimit.redis.settings import RedisSettings
{% endif -%}
from .service_settings import ServiceSettings
from .validation import describe_problems


class Settings({% if cookiecutter.use_redis %}RedisSettings, {% endif %}{% if cookiecutter.use_jwt %}JwtSettings, {% endif %}{% if cookiecutter.use_grpc %}GrpcSettings, {% endif %}{% if cookiecutter.use_graphql %}GraphQLSettings, {% endif %}ServiceSettings):
    """Every setting of this service."""


class ConfigurationError(SystemExit):
    """Raised with one readable line when the configuration is invalid."""


def environment_name(location: tuple[int | str, ...]) -> str:
    return "_".join(str(part) for part in location).upper()


def describe_error(error: ValidationError) -> str:
    """One line naming every bad variable and why it was refused."""
    problems = describe_problems(
        error.errors(), name=environment_name, limit=None, fallback="settings"
    )
    return "invalid configuration: " + problems


def load_settings(**overrides: object) -> Settings:
    """Read the settings; exit with one clear line if they are invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(describe_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
