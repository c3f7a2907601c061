"""How the command-line tools, the sink and the topic setup connect to Kafka (kafka-python).

One place for what every such client shares: the bootstrap servers, and how long to try
them before giving up. kafka-python waits 30 s by default, in silence; a wrong
``KAFKA_BOOTSTRAP`` is a mistake a person should hear of in seconds, as one line
(``streams.cli`` prints it). The workers' own clients are Faust's (``streams.app``).
"""

from __future__ import annotations

from typing import Any

# A broker that answers does so in milliseconds; a few seconds covers a slow network.
BOOTSTRAP_TIMEOUT_S = 5.0


def kafka_config(bootstrap: str, **config: Any) -> dict[str, Any]:
    """The keyword arguments of a kafka-python client of ``bootstrap``, with ``config`` added."""
    servers = [host.strip() for host in bootstrap.split(",") if host.strip()]
    return {"bootstrap_servers": servers, "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000), **config}
