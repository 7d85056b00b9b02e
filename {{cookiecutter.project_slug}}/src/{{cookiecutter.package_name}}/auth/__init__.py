"""Who is calling: the Principal, and the credentials that establish it."""

from .principal import Principal, get_principal, set_principal

__all__ = ["Principal", "get_principal", "set_principal"]
