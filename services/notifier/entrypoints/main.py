"""`notifier-service`: runs the notifier until SIGTERM/SIGINT."""

from __future__ import annotations

import sys


def main() -> None:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(
            "usage: notifier-service\n\n"
            "Consumes recovery.decisions and turns each decision or escalation into one apology\n"
            "email request (in the customer's language), kept as an event in PostgreSQL\n"
            "(DATABASE_URL) and published to notifications.email via the outbox. Reads the\n"
            "delivery outcomes back from notifications.email to keep each request's status.\n"
            'Configuration comes from the environment; see docs/operations.md, "Configuration".'
        )
        return
    from services.notifier.entrypoints.kafka import run

    run()


if __name__ == "__main__":
    main()
