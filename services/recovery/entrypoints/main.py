"""`recovery-service`: runs the recovery service until SIGTERM/SIGINT."""

from __future__ import annotations

import sys


def main() -> None:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(
            "usage: recovery-service\n\n"
            "Consumes billing.charges and customer.complaints, decides each complaint by the\n"
            "policy (RECOVERY_POLICY_FILE) or escalates it, keeps every decision as an event in\n"
            "PostgreSQL (DATABASE_URL) and publishes it to recovery.decisions via the outbox.\n"
            'Configuration comes from the environment; see docs/operations.md, "Configuration".'
        )
        return
    from services.recovery.entrypoints.kafka import run

    run()


if __name__ == "__main__":
    main()
