"""The image's HEALTHCHECK: exit 0 when the process in this container answers ``/healthz``.

One image runs several programs on different ports (recovery-service 8080, notifier-service
8081, delivery-worker 8082, each overridable), so the check tries the configured ports
first, then the defaults; inside a container only that one process listens, and a closed
port on the loopback answers at once. Standard library only: slim images have no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = (8080, 8081, 8082)
TIMEOUT_S = 2.0


def candidate_ports(environ: dict[str, str] | os._Environ[str]) -> list[int]:
    """HTTP_PORT and DELIVERY_HTTP_PORT when set, then the settings defaults, no repeats."""
    ports: list[int] = []
    for name in ("HTTP_PORT", "DELIVERY_HTTP_PORT"):
        value = environ.get(name) or environ.get(name.lower())
        if value and value.strip().isdigit():
            ports.append(int(value))
    ports.extend(DEFAULT_PORTS)
    return list(dict.fromkeys(p for p in ports if p > 0))


def healthy(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=TIMEOUT_S) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    for port in candidate_ports(os.environ):
        if healthy(port):
            return 0
    print("no /healthz answered on ports", candidate_ports(os.environ), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
