"""Configuration from the environment (pydantic-settings).

Every service subclasses ``ServiceSettings`` and names its own database URL and port
variables (``GATEWAY_DATABASE_URL``, ``GATEWAY_PORT``...), so one environment can hold all six
and supervisord needs no per-program environment.
"""
from __future__ import annotations

import json
import os
import socket
from typing import Annotated, ClassVar, Literal

from pydantic import AliasChoices, BeforeValidator, Field, create_model
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The header every internal HTTP call carries when INTERNAL_API_KEY is set (see common/web.py).
INTERNAL_KEY_HEADER = "X-Internal-Key"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

SERVICE_PORTS = {
    "gateway": 3000,
    "conversation": 3010,
    "ai": 3020,
    "knowledge": 3030,
    "avatar": 3040,
    "analytics": 3050,
}


def service_url(name: str) -> str:
    """Internal base URL of a service: ``<NAME>_URL`` or loopback on ``<NAME>_PORT``."""
    explicit = os.environ.get(f"{name.upper()}_URL")
    if explicit:
        return explicit.rstrip("/")
    port = os.environ.get(f"{name.upper()}_PORT", SERVICE_PORTS[name])
    return f"http://127.0.0.1:{port}"


def _networks(value):
    if isinstance(value, str):
        value = value.strip()
        return json.loads(value) if value.startswith("[") else [n.strip() for n in value.split(",") if n.strip()]
    return value


# A list of networks from the environment, as JSON ('["10.0.0.0/8"]') or comma-separated
# ("10.0.0.0/8,127.0.0.1/32"), so a shell-sourced env file needs no quoting.
NetworkList = Annotated[list[str], NoDecode, BeforeValidator(_networks)]


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    # hide_input_in_errors: a validation error must never print the environment (secrets) into a log
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    service: ClassVar[str] = ""

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", validation_alias="AMQP_URL")
    # `production` (the image sets it) refuses development defaults for secrets
    environment: str = Field("development", validation_alias="AVATARCHAT_ENV")
    # Shared by every program: each /internal/ route requires it, every internal client sends it.
    # Needed whenever a service other than the gateway listens beyond loopback.
    internal_api_key: str | None = Field(None, validation_alias="INTERNAL_API_KEY")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    instance_id: str = Field(default_factory=_default_instance_id, validation_alias="INSTANCE_ID")
    # Seconds a SIGTERM waits for in-flight handlers and streams before exiting.
    shutdown_timeout: float = Field(20.0, validation_alias="SHUTDOWN_TIMEOUT")
    # Bounded retries of a failing event handler before the message is dead-lettered.
    bus_max_retries: int = Field(5, validation_alias="BUS_MAX_RETRIES")
    bus_retry_delay_ms: int = Field(500, validation_alias="BUS_RETRY_DELAY_MS")
    bus_prefetch: int = Field(64, validation_alias="BUS_PREFETCH")
    # classic (one broker node) or quorum (a RabbitMQ cluster; docs/scaling.md), and a quorum
    # queue's deliveries of one message before it is dead-lettered
    amqp_queue_type: Literal["classic", "quorum"] = Field("classic", validation_alias="AMQP_QUEUE_TYPE")
    amqp_delivery_limit: int = Field(20, ge=1, validation_alias="AMQP_DELIVERY_LIMIT")
    db_pool_max: int = Field(10, validation_alias="DB_POOL_MAX")
    # a request body must arrive within this (408 otherwise): a trickled body holds no handler
    body_timeout_s: float = Field(30.0, gt=0, validation_alias="BODY_TIMEOUT_SECONDS")
    # How long a visitor waits for a reply at most. The conversation service owns it (its
    # watchdog fails overdue replies, and a message that waited out a long outage is failed,
    # not answered late); ai gives up a little earlier, the gateway's stream a little later.
    reply_deadline_s: float = Field(180.0, validation_alias="REPLY_DEADLINE_SECONDS")


def listen_problem(settings: ServiceSettings) -> str | None:
    """Why this service must not start listening as configured, or None."""
    if settings.service == "gateway" or settings.bind_host in LOOPBACK_HOSTS or settings.internal_api_key:
        return None
    return (f"{settings.service} would listen on {settings.bind_host} with its /internal/ routes open: "
            "set INTERNAL_API_KEY (the same value in every container) or keep it on 127.0.0.1")


def settings_for(name: str, base: type[ServiceSettings] = ServiceSettings) -> type[ServiceSettings]:
    """A settings class for service ``name`` with its ``<NAME>_DATABASE_URL`` and ``<NAME>_PORT``.

    Services subclass the result to add their own fields.
    """
    upper = name.upper()
    cls = create_model(
        f"{name.title()}BaseSettings",
        __base__=base,
        database_url=(str, Field(validation_alias=AliasChoices(f"{upper}_DATABASE_URL", "DATABASE_URL"))),
        port=(int, Field(SERVICE_PORTS[name], validation_alias=f"{upper}_PORT")),
        # <NAME>_BIND_HOST wins over BIND_HOST, so one container can put only the gateway on
        # its network interface and keep the five internal services on loopback
        bind_host=(str, Field("127.0.0.1", validation_alias=AliasChoices(f"{upper}_BIND_HOST", "BIND_HOST"))),
    )
    cls.service = name
    return cls
