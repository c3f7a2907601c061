"""How every client of the project connects to Kafka: the bootstrap servers and the security.

``KafkaConnection`` is built once from the settings (``Settings.connection``) and hands
each client library its own spelling of the same connection: kafka-python (the
command-line tools, the sink, the topic setup), aiokafka (the gap repair's readers) and
Faust (``streams.app.broker_credentials``). Supported: PLAINTEXT, SSL (with a
CA file, and a client certificate for mutual TLS), SASL_PLAINTEXT and SASL_SSL with the
PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 mechanisms: what Confluent Cloud, Amazon MSK,
Aiven and self-run clusters use. Secrets never appear in a repr.

kafka-python tries the bootstrap servers for 30 s by default, in silence; a wrong
``KAFKA_BOOTSTRAP`` is a mistake a person should hear of in seconds, as one line.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

# A broker that answers does so in milliseconds; a few seconds covers a slow network.
BOOTSTRAP_TIMEOUT_S = 8.0
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca_file: str = ""  # empty: the system's trusted CAs
    ssl_cert_file: str = ""  # a client certificate: mutual TLS
    ssl_key_file: str = ""
    ssl_key_password: str = field(default="", repr=False)

    @property
    def servers(self) -> list[str]:
        return [host.strip() for host in self.bootstrap.split(",") if host.strip()]

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def sasl(self) -> dict[str, Any]:
        """The SASL keyword arguments, spelt alike by kafka-python and aiokafka; none without SASL."""
        if not self.uses_sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password,
        }

    def kafka_python(self, **config: Any) -> dict[str, Any]:
        """The keyword arguments of a kafka-python client, with ``config`` added."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
            "security_protocol": self.security_protocol,
        }
        options.update(self.sasl())
        if self.uses_ssl:
            options.update(
                ssl_cafile=self.ssl_ca_file or None,
                ssl_certfile=self.ssl_cert_file or None,
                ssl_keyfile=self.ssl_key_file or None,
                ssl_password=self.ssl_key_password or None,
            )
        return {**options, **config}

    def aiokafka(self) -> dict[str, Any]:
        """The security keyword arguments of an aiokafka client."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol, **self.sasl()}
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that checks the broker against the CA file (or the system's CAs) and
        presents the client certificate when one is given."""
        context = ssl.create_default_context(cafile=self.ssl_ca_file or None)
        if self.ssl_cert_file:
            context.load_cert_chain(self.ssl_cert_file, self.ssl_key_file or None, self.ssl_key_password or None)
        return context

    def problem(self) -> str | None:
        """What is wrong with this combination of settings, in one line; None when it holds."""
        if self.security_protocol not in PROTOCOLS:
            return f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}"
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                return f"KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)} with {self.security_protocol}"
            if not self.sasl_username or not self.sasl_password:
                return (
                    f"{self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
                    "(or KAFKA_SASL_PASSWORD_FILE)"
                )
        elif self.sasl_mechanism or self.sasl_username:
            return f"KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is {self.security_protocol}: use SASL_SSL"
        if not self.uses_ssl and (self.ssl_ca_file or self.ssl_cert_file or self.ssl_key_file):
            return f"KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL is {self.security_protocol}: use SSL or SASL_SSL"
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            return "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS needs both)"
        return None


class BootstrapFailures(logging.Handler):
    """The last reason kafka-python gave for a failed bootstrap connection (a refused password,
    a certificate it does not trust), which it logs and then reports only as a timeout."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Bootstrap connection to") and len(record.args or ()) >= 2:
            error = record.args[1]  # type: ignore[index]  # (node, exception, backoff)
            cause = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
            # The attempt the deadline cuts short says less than the failures before it.
            if self.last is None or "TimedOut" not in cause:
                self.last = cause

    @classmethod
    def watch(cls) -> BootstrapFailures:
        """Record (without printing) kafka-python's bootstrap failures from now on."""
        handler = cls()
        logger = logging.getLogger("kafka.net.manager")
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        logger.addHandler(handler)
        return handler


def unreachable(connection: KafkaConnection, error: Exception, cause: str | None) -> str:
    """One line for a client that could not connect: why, when kafka-python said, and what to check."""
    where = f"Kafka at {connection.bootstrap}"
    # A refused password: the broker's answer, or (when it hangs up first) a dropped connection.
    if cause and connection.uses_sasl and ("SaslAuthentication" in cause or "disconnected" in cause):
        return (
            f"{where} closed the connection while authenticating ({cause}): check KAFKA_SASL_MECHANISM "
            f"({connection.sasl_mechanism}), KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    if cause and any(word in cause for word in ("Authentication", "SASL", "Sasl", "SSL", "certificate")):
        return (
            f"{where} refused the connection ({cause}): check KAFKA_SECURITY_PROTOCOL "
            f"({connection.security_protocol}), KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and "
            "KAFKA_SSL_*"
        )
    detail = cause or f"{type(error).__name__}: {error}"
    return f"cannot reach {where} ({detail}); start it (deploy/local/kafka start) or set KAFKA_BOOTSTRAP"
