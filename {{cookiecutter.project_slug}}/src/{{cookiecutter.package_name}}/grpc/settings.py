"""Settings of ``use_grpc``: where the gRPC server listens.

Composed into ``settings.Settings``; the variables are documented in ``.env.example``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ..service_settings import ServiceSettings


class GrpcSettings(ServiceSettings):
    grpc_enabled: bool = True
    # Empty: the same address as HOST.
    grpc_host: str = ""
    # 0 picks a free port (tests).
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    grpc_reflection: bool = True

    @model_validator(mode="after")
    def _grpc_port_usable(self) -> GrpcSettings:
        if not self.grpc_enabled:
            return self
        if self.grpc_port == self.port:
            raise ValueError("GRPC_PORT must differ from PORT")
        return self
