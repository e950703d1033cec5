"""`recoveryctl demo`: the customer stories behind the policy, sent as a billing system and a
contact channel would, and what the system did about each, as a table.

It plays through the stack a `recoveryctl dev` (`make run`) already runs on the data directory
when there is one, and counts the emails that stack's SMTP sink received for this run; a second
set of services beside it would compete for its ports and its topics. Otherwise it starts the
stack and the services itself (`make demo` on a fresh machine), and leaves them running until
Ctrl-C. Either way it ends with the escalation desk's address and a sign-in token, so the
demo's escalations can be worked in the browser.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from services.recovery.entrypoints import devrun
from services.recovery.settings import RecoverySettings

NOW = datetime.now(UTC).replace(microsecond=0)
RUN = uuid.uuid4().hex[:6]


def _event(type_: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "demo", "type": type_,
            "time": NOW.isoformat(), "subject": subject, "datacontenttype": "application/json",
            "data": data}  # fmt: skip


def _charge(cust: str, cid: str, amount: str, cur: str, kind: str, desc: str,
            product: dict[str, str] | None = None, days_ago: float = 1) -> dict[str, Any]:  # fmt: skip
    data: dict[str, Any] = {"charge_id": cid, "customer_id": cust, "amount": amount, "currency": cur,
                            "kind": kind, "description": desc,
                            "posted_at": (NOW - timedelta(days=days_ago)).isoformat()}  # fmt: skip
    if product:
        data["product"] = product
    return _event("billing.charge.posted.v1", cust, data)


def _complaint(cust: str, name: str, locale: str, category: str, text: str, **extra: Any) -> dict[str, Any]:
    data = {"complaint_id": f"cmp-{uuid.uuid4().hex[:8]}",
            "customer": {"id": cust, "name": name, "email": f"{cust}@example.com", "locale": locale},
            "channel": extra.pop("channel", "web"), "category": category, "description": text,
            "filed_at": (NOW - timedelta(minutes=2)).isoformat(), **extra}  # fmt: skip
    return _event("complaint.filed.v1", cust, data)


def stories() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """(history, charges, [(story, complaint)]) for the customer stories behind the policy
    (docs/policy.md): ``history`` is what billing charged other customers before, the usual
    amounts that the stories' charges are judged against when they arrive."""

    def c(s: str) -> str:  # unique ids per demo run
        return f"{s}-{RUN}"

    history = [_charge(c(f"shipper{i}"), c(f"ch-ship{i}"), amt, "USD", "shipping", "Shipping, 3 cartons")
               for i, amt in enumerate(["12.00", "15.00", "18.00", "14.50", "16.00"])]  # fmt: skip
    charges = [
        _charge(c("luis"), c("ch-film"), "4.99", "USD", "purchase", "Eat, Pray, Love (rental)",
                {"sku": "film-epl", "name": "Eat, Pray, Love", "type": "digital"}),
        _charge(c("ana"), c("ch-ld"), "2.70", "USD", "long_distance", "Long distance call"),
        _charge(c("mark"), c("ch-tp"), "7455.00", "USD", "shipping", "Shipping, 3 cartons of toilet paper"),
        _charge(c("dave"), c("ch-flight"), "420.00", "USD", "purchase", "Flight + checked guitar"),
        _charge(c("marta"), c("ch-phone"), "649.00", "EUR", "purchase", "iPhone",
                {"sku": "iphone", "name": "iPhone", "type": "physical"}, days_ago=40),
        _charge(c("sam"), c("ch-cable"), "90.00", "USD", "subscription", "Cable, monthly", days_ago=10),
        _charge(c("rita"), c("ch-fee"), "35.00", "USD", "late_fee", "Late fee"),
    ]  # fmt: skip
    repeat = [_complaint(c("rita"), "Rita", "en-US", "service_failure",
                         f"Contact {n}: the late fee is wrong.", charge_id=c("ch-fee"))
              for n in (1, 2, 3)]  # fmt: skip
    complaints = [
        ("iTunes film that never played (US$4.99)", _complaint(c("luis"), "Luis Fernando", "es-CO",
         "delivery_failed", "La película se volvió a descargar y no se pudo ver.", charge_id=c("ch-film"))),
        ("Telco claim under US$2.70", _complaint(c("ana"), "Ana", "es-CO", "charge_disputed",
         "No hice esa llamada de larga distancia.", charge_id=c("ch-ld"))),
        ("US$7,455 shipping on toilet paper", _complaint(c("mark"), "Mark", "en-US", "charge_disputed",
         "I was charged $7,455 for shipping three cartons.", charge_id=c("ch-tp"))),
        # A claim about the guitar, not about the flight's charge: bounded by the rule's limit.
        ("Guitar broken in the hold (US$1,200)", _complaint(c("dave"), "Dave", "en-US", "damaged_item",
         "My guitar arrived broken.", order_id=c("flight"), claimed_amount="1200.00", currency="USD")),
        ("Defective phone (Phonehouse)", _complaint(c("marta"), "Marta", "es-ES", "defective_product",
         "No me oyen cuando llamo.", charge_id=c("ch-phone"), remedy_preference="refund",
         purchased_at=(NOW - timedelta(days=40)).isoformat())),
        ("Cancellation (Comcast)", _complaint(c("sam"), "Sam", "en-US", "cancellation",
         "Please cancel my service.", charge_id=c("ch-cable"))),
        *[(f"Repeat contact #{i + 1} on one fee", r) for i, r in enumerate(repeat)],
    ]  # fmt: skip
    return history, charges, complaints


async def play(settings: RecoverySettings, timeout_s: float = 90, wait_for_mail: bool = True) -> list[dict[str, Any]]:
    history, charges, complaints = stories()
    consumers = {t: AIOKafkaConsumer(t, **settings.kafka_client_options(), auto_offset_reset="latest",
                                     enable_auto_commit=False)
                 for t in (settings.topic_decisions, settings.topic_notifications)}  # fmt: skip
    for c in consumers.values():
        await c.start()
        await c.getmany(timeout_ms=500)  # join before sending, so nothing is missed
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        # A charge is judged against the charges recorded before it (its usual amount), and
        # other customers' charges travel on other partitions: send the history first, then
        # the stories' charges, then the complaints, each once the service has recorded the last.
        for batch in (history, charges):
            for e in batch:
                await producer.send_and_wait(settings.topic_charges, json.dumps(e).encode(), key=e["subject"].encode())
            await _wait_for_charges(settings, [e["data"]["charge_id"] for e in batch], timeout_s)
        for _, e in complaints:
            await producer.send_and_wait(settings.topic_complaints, json.dumps(e).encode(), key=e["subject"].encode())
            await asyncio.sleep(0.3)  # repeat contacts arrive one after another
        seen: list[dict[str, Any]] = []
        # A middle repeat contact only joins its open case: nothing is published for it.
        wanted = {e["data"]["complaint_id"] for story, e in complaints if "#2" not in story}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for c in consumers.values():
                for recs in (await c.getmany(timeout_ms=300)).values():
                    seen.extend(json.loads(r.value) for r in recs)
            answered = {e["data"].get("complaint_id") for e in seen
                        if e["type"] in ("recovery.decision.made.v1", "recovery.case.escalated.v1")}  # fmt: skip
            mails = sum(1 for e in seen if e["type"] == "notification.email.requested.v1")
            if wanted <= answered and (not wait_for_mail or mails >= len({*answered} - {None}) - 3):
                await asyncio.sleep(1.5)
                for c in consumers.values():
                    for recs in (await c.getmany(timeout_ms=300)).values():
                        seen.extend(json.loads(r.value) for r in recs)
                break
        return _rows(complaints, seen)
    finally:
        await producer.stop()
        for c in consumers.values():
            await c.stop()


async def _wait_for_charges(settings: RecoverySettings, charge_ids: list[str], timeout_s: float) -> None:
    conn = await asyncpg.connect(settings.database_dsn())
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = await conn.fetchval("SELECT count(*) FROM rm_charges WHERE charge_id = ANY($1::text[])", charge_ids)
            if seen == len(charge_ids):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise TimeoutError(f"the recovery service did not record the demo's charges within {timeout_s:.0f} s")


def _rows(complaints: list[tuple[str, dict[str, Any]]], seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_complaint: dict[str, list[dict[str, Any]]] = {}
    case_of: dict[str, str] = {}
    for e in seen:
        d = e["data"]
        if "complaint_id" in d:
            by_complaint.setdefault(d["complaint_id"], []).append(e)
        if e["type"] == "recovery.case.opened.v1":
            case_of[d["case_id"]] = d["complaint_id"]
    mails = {e["data"]["causation"]: e["data"] for e in seen if e["type"] == "notification.email.requested.v1"}
    rows = []
    for story, c in complaints:
        events = by_complaint.get(c["data"]["complaint_id"], [])
        decision = next((e for e in events if e["type"] == "recovery.decision.made.v1"), None)
        escalation = next((e for e in events if e["type"] == "recovery.case.escalated.v1"), None)
        chosen = decision or escalation
        mail = mails.get(chosen["id"]) if chosen else None
        joined = any(c["data"]["complaint_id"] == e["data"].get("complaint", {}).get("complaint_id")
                     for e in seen if e["type"] == "recovery.case.contact_added.v1")  # fmt: skip
        rows.append({"story": story, "decision": decision, "escalation": escalation, "mail": mail,
                     "joined": joined or (not chosen and "Repeat" in story)})  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Customer stories: what the service did", show_lines=True)
    for col in ("story", "outcome", "remedies", "rule / reasons", "apology (subject)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        d, esc, mail = r["decision"], r["escalation"], r["mail"]
        if d:
            data = d["data"]
            remedies = "\n".join(_remedy(x) for x in data["remedies"]) or "-"
            reasons = data["policy"]["rule"] + "\n" + "; ".join(x["text"] for x in data["reasons"])
            outcome = f"{data['outcome']} by {data['decided_by']}" + ("" if data["within_sla"] else " (late)")
        elif esc:
            data = esc["data"]
            remedies = "-"
            reasons = f"{data['reason']['code']}\n{data['reason']['text']}"
            outcome = f"escalated ({data['priority']}) to {data['assignee']}"
        elif r["joined"]:
            remedies, reasons, outcome = "-", "repeat contact", "joined the open case"
        else:
            remedies, reasons, outcome = "-", "-", "[red]no answer yet[/]"
        table.add_row(r["story"], outcome, remedies, reasons, mail["subject"] if mail else "-")
    console.print(table)


def _remedy(x: dict[str, Any]) -> str:
    money = f" {x['amount']} {x['currency']}" if x.get("amount") else ""
    extra = f" code {x['voucher_code']}" if x.get("voucher_code") else ""
    return f"{x['type']}{money}{extra}"


def run(data_dir: Path, partitions: int, console: Console) -> None:
    """Play the stories through the stack running on ``data_dir``, or through one started here."""
    running = devrun.find_running(data_dir)
    stack: devrun.DevStack | None = None
    try:
        if running is not None and running.services:
            console.print(f"Playing through the stack already running on {data_dir} "
                          f"(pid {running.pid}); nothing else is started.")  # fmt: skip
            settings, maildir = running.settings(), running.maildir
        else:
            if running is not None:  # its servers, without services: start those for the demo alone
                console.print(f"Using the servers of the stack running on {data_dir} (pid {running.pid}).")
                stack = devrun.DevStack(env=dict(running.env))
            else:
                stack = devrun.bring_up(data_dir, None, partitions)
            devrun.start_smtp_sink(stack, data_dir)
            devrun.start_services(stack, data_dir)
            if running is None:  # it stays up: a second demo or dev on the data directory finds it
                devrun.announce(stack, data_dir, services=True)
            settings = RecoverySettings(**{k.lower(): v for k, v in stack.env.items()})  # type: ignore[arg-type]
            maildir = data_dir / "mail"
            time.sleep(2)  # let the consumers join their groups
        with console.status("Playing the customer stories through Kafka..."):
            rows = asyncio.run(play(settings))
            requested = sum(1 for r in rows if r["mail"])
            delivered = wait_for_delivery(maildir, requested)
        render(rows, console)
        console.print(f"Emails delivered to the local SMTP sink: {delivered} of {requested} requested "
                      f"(saved under {maildir})")  # fmt: skip
        desk_url = stack.desk_url if stack is not None else running.desk_url if running is not None else None
        if desk_url is not None:
            show_desk(settings, desk_url, console)
        if stack is not None:
            console.print("\n[green]Left running[/] for the desk. Press Ctrl-C to stop everything.")
            devrun.wait_until_stopped(stack)
    finally:
        if stack is not None:
            stack.stop()


def show_desk(settings: RecoverySettings, url: str, console: Console, person: str = "demo-supervisor") -> None:
    """The desk's address and a fresh sign-in token for ``person``, once the desk answers."""
    if not devrun.wait_for_desk(url):
        console.print(f"[yellow]The escalation desk at {url} does not answer yet[/]: see the recovery service's log.")
    token = asyncio.run(devrun.demo_sign_ins(settings))[person]
    console.print(f"\nThe escalation desk: {url}", soft_wrap=True)
    console.print(f"Sign in as {person} with the token: {token}", soft_wrap=True)


def delivered_emails(maildir: Path, run: str = RUN) -> int:
    """Emails in the SMTP sink's folder addressed to the customers of this run."""
    mark, parser, count = f"-{run}@example.com", BytesHeaderParser(), 0
    for path in maildir.glob("*.eml"):
        count += mark in str(parser.parsebytes(path.read_bytes()).get("To", ""))
    return count


def wait_for_delivery(maildir: Path, expected: int, timeout_s: float = 30) -> int:
    """The emails delivered for this run, once all ``expected`` are in, or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while (count := delivered_emails(maildir)) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return count
