"""Turn a sample event into one kafka-console-producer line, stamped fresh.

    python3 deploy/samples/kafka_line.py deploy/samples/complaint.json | \
      docker compose -f deploy/docker-compose.yml exec -T kafka \
        /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server kafka:19092 \
        --topic customer.complaints --property parse.key=true --property parse.headers=true

The line is ``content-type:application/cloudevents+json<TAB>customer id<TAB>event JSON``
(the console producer's default header and key separators). The event gets a new ``id``,
``time`` and ``filed_at``/``posted_at`` of now, so the SLA clock starts now and a second
run is a second event, not a redelivery; ``complaint_id`` gets a fresh suffix too, while
``order_id`` stays, so three runs show the repeat-contact rule. ``--as-is`` keeps the file's
values. Standard library only, so it runs with any python3 on the host.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

CONTENT_TYPE = "application/cloudevents+json"
STAMPED_TIMES = ("filed_at", "posted_at", "refunded_at")


def stamp(event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A copy of ``event`` with a fresh id and its times set to ``now``."""
    out = json.loads(json.dumps(event))
    when = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    out["id"] = str(uuid.uuid4())
    out["time"] = when
    data = out.get("data", {})
    for name in STAMPED_TIMES:
        if name in data:
            data[name] = when
    if "complaint_id" in data:
        data["complaint_id"] = f"{data['complaint_id']}-{out['id'][:8]}"
    return out


def kafka_line(event: dict[str, Any]) -> str:
    """Headers, key (the customer id, docs/contract.md) and the compact JSON value, tab-separated."""
    key = event.get("subject") or event["data"]["customer"]["id"]
    value = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if "\t" in key or "\n" in value:
        raise ValueError("the key and value must not contain tabs or newlines")
    return f"content-type:{CONTENT_TYPE}\t{key}\t{value}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a CloudEvents JSON file, e.g. deploy/samples/complaint.json")
    parser.add_argument("--as-is", action="store_true", help="keep the file's id and times")
    args = parser.parse_args(argv)
    with open(args.file, encoding="utf-8") as fh:
        event = json.load(fh)
    if not args.as_is:
        event = stamp(event, datetime.now(UTC))
    print(kafka_line(event))
    return 0


if __name__ == "__main__":
    sys.exit(main())
