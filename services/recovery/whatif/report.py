"""The what-if report: a terminal table (rich), a self-contained HTML page with inline SVG
charts (no scripts, no fonts or styles from elsewhere: it opens offline), and a CSV of the
cases decided differently. Ids, rules, reason codes and amounts only; no personal data.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.console import Console
from rich.table import Table

from services.common.contract.money import format_amount
from services.recovery.whatif.outcome import Outcome
from services.recovery.whatif.simulate import CaseResult
from services.recovery.whatif.summary import Pair, Summary

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSV_COLUMNS = (
    "case_id",
    "customer_id",
    "filed_at",
    "outcome_before",
    "outcome_after",
    "rule_before",
    "rule_after",
    "decided_by_before",
    "decided_by_after",
    "escalations_before",
    "escalations_after",
    "within_sla_before",
    "within_sla_after",
    "currency",
    "money_before",
    "money_after",
    "remedies_before",
    "remedies_after",
)


def money(amount: Decimal) -> str:
    return format_amount(amount)


def delta(pair: Pair | tuple[int, int]) -> str:
    diff = pair[1] - pair[0]
    return f"{'+' if diff > 0 else ''}{format_amount(diff) if isinstance(diff, Decimal) else diff}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _when(s: Summary) -> str:
    since = s.since.isoformat() if s.since else "the beginning"
    until = s.until.isoformat() if s.until else "now"
    return f"complaints filed from {since} until {until}"


# ------------------------------------------------------------------------ terminal


def render_terminal(s: Summary, console: Console) -> None:
    """The report as rich tables."""
    console.print(
        f"[bold]What-if[/]: {_when(s)} re-decided under [bold]{s.candidate}[/] "
        f"(in force as recorded: {', '.join(s.in_force) or 'no automatic decisions'})"
    )
    console.print(
        f"{s.cases:,} cases, {s.complaints:,} complaints; [bold]{s.changed:,} decided differently[/]; "
        f"{s.exact:,} reproduced event for event (but for the policy version they name)."
    )
    head = Table(title="In force vs candidate", title_justify="left")
    for col in ("", "in force", "candidate", "change"):
        head.add_column(col, justify="right" if col else "left")
    head.add_row("escalations a person handles", str(s.escalations[0]), str(s.escalations[1]), delta(s.escalations))
    head.add_row("decisions by a person", str(s.by_person[0]), str(s.by_person[1]), delta(s.by_person))
    head.add_row("decisions", str(s.decisions[0]), str(s.decisions[1]), delta(s.decisions))
    sla = s.sla_attainment()
    head.add_row("SLA attainment (decisions in time)", percent(sla[0]), percent(sla[1]), "")
    head.add_row("SLA breaches", str(s.breaches[0]), str(s.breaches[1]), delta(s.breaches))
    head.add_row("breach fallbacks granted", str(s.fallbacks[0]), str(s.fallbacks[1]), delta(s.fallbacks))
    head.add_row("cases still open at the end", str(s.open_at_end[0]), str(s.open_at_end[1]), delta(s.open_at_end))
    for cur, pair in sorted(s.handling_cost.items()):
        per = money(s.cost_per_contact.get(cur, Decimal(0)))
        head.add_row(f"handling cost {cur} (at {per} a contact)", money(pair[0]), money(pair[1]), delta(pair))
    console.print(head)
    out = Table(title="Money out by remedy type", title_justify="left")
    for col in ("currency", "remedy", "in force", "candidate", "change"):
        out.add_column(col, justify="right" if col in ("in force", "candidate", "change") else "left")
    for (cur, kind), pair in sorted(s.money.items()):
        out.add_row(cur, kind, money(pair[0]), money(pair[1]), delta(pair))
    for cur, pair in sorted(s.money_total.items()):
        out.add_row(f"[bold]{cur}[/]", "[bold]total[/]", money(pair[0]), money(pair[1]), delta(pair))
    console.print(out)
    changes = Table(title="Decided differently", title_justify="left")
    for col in ("in force", "candidate", "cases", "money (in force -> candidate)", "examples"):
        changes.add_column(col, overflow="fold")
    for c in s.changes:
        cash = "; ".join(f"{cur} {money(b)} -> {money(a)}" for cur, (b, a) in sorted(c.money.items()))
        changes.add_row(c.before, c.after, str(c.cases), cash or "-", ", ".join(c.examples))
    console.print(changes)
    if s.assumed_person:
        console.print(
            f"{s.assumed_person:,} decisions the policy in force made alone are escalated by the candidate: "
            "counted as escalations, with their money as granted live (assumed: a person grants the same)."
        )
    if s.person_skipped:
        console.print(f"{s.person_skipped:,} decisions made by a person are not needed under the candidate.")


# ------------------------------------------------------------------------ CSV


def _remedies(o: Outcome) -> str:
    parts = []
    for d in o.decisions:
        for kind, amount, cur in d.remedies:
            parts.append(f"{kind} {money(amount)} {cur}" if amount is not None else kind)
    return "; ".join(parts)


def _last_sla(o: Outcome) -> str:
    return "" if not o.decisions else ("yes" if o.decisions[-1].within_sla else "no")


def csv_rows(results: Sequence[CaseResult]) -> list[dict[str, str]]:
    """The changed cases, one row per case and currency of its money (one row without
    currency when neither side has money), sorted by filing time."""
    rows: list[dict[str, str]] = []
    for r in sorted(results, key=lambda r: (r.filed_at, r.case_id)):
        if not r.changed:
            continue
        b, a = r.before, r.after
        base = {
            "case_id": r.case_id,
            "customer_id": r.customer_id,
            "filed_at": r.filed_at,
            "outcome_before": b.label or b.status,
            "outcome_after": a.label or a.status,
            "rule_before": b.rule,
            "rule_after": a.rule,
            "decided_by_before": b.decided_by,
            "decided_by_after": a.decided_by,
            "escalations_before": str(b.escalations),
            "escalations_after": str(a.escalations),
            "within_sla_before": _last_sla(b),
            "within_sla_after": _last_sla(a),
            "remedies_before": _remedies(b),
            "remedies_after": _remedies(a),
        }
        currencies = sorted(b.currencies() | a.currencies()) or [""]
        for cur in currencies:
            before = money(b.money_in(cur)) if cur else ""
            after = money(a.money_in(cur)) if cur else ""
            rows.append({**base, "currency": cur, "money_before": before, "money_after": after})
    return rows


def write_csv(results: Sequence[CaseResult], path: Path) -> int:
    rows = csv_rows(results)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


# ------------------------------------------------------------------------ HTML


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: str
    series: str


@dataclass(frozen=True)
class Group:
    month: str
    label_x: float
    bars: tuple[Bar, Bar]


@dataclass(frozen=True)
class Chart:
    """A grouped bar chart (in force, candidate) per month, laid out for inline SVG."""

    key: str
    title: str
    width: int
    height: int
    baseline: float
    top: str
    groups: tuple[Group, ...]


def bar_chart(key: str, title: str, months: Sequence[str], values: Sequence[tuple[Decimal, Decimal]]) -> Chart:
    width, height, left, bottom, top_pad = max(320, 40 + 56 * len(months)), 220, 40, 30, 16
    plot = height - bottom - top_pad
    peak = max([max(v) for v in values] + [Decimal(0)])
    scale = float(plot) / float(peak) if peak > 0 else 0.0
    slot = (width - left - 10) / max(len(months), 1)
    bar_w = max(min(slot * 0.35, 22.0), 4.0)
    groups = []
    for i, (month, (before, after)) in enumerate(zip(months, values, strict=True)):
        x0 = left + i * slot + (slot - 2 * bar_w) / 2
        bars = tuple(
            Bar(
                x=round(x0 + j * bar_w, 2),
                y=round(height - bottom - float(v) * scale, 2),
                width=round(bar_w, 2),
                height=round(float(v) * scale, 2),
                value=money(v) if isinstance(v, Decimal) and v != v.to_integral() else str(v),
                series=series,
            )
            for j, (v, series) in enumerate(((before, "before"), (after, "after")))
        )
        groups.append(Group(month, round(left + i * slot + slot / 2, 2), (bars[0], bars[1])))
    top = money(peak) if peak != peak.to_integral() else str(peak)
    return Chart(key, title, width, height, float(height - bottom), top, tuple(groups))


def charts(s: Summary) -> list[Chart]:
    """Escalations per month, and money out per month for each currency."""
    months = list(s.months)
    out = [
        bar_chart(
            "escalations",
            "Escalations a person handles, per month",
            months,
            [(Decimal(m.escalations[0]), Decimal(m.escalations[1])) for m in s.months.values()],
        )
    ]
    for cur in sorted(s.money_total):
        zero = (Decimal(0), Decimal(0))
        values = [m.money.get(cur, zero) for m in s.months.values()]
        out.append(bar_chart(f"money-{cur}", f"Money out per month, {cur}", months, values))
    return out


def render_html(s: Summary) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["money"] = money
    env.filters["delta"] = delta
    env.filters["percent"] = percent
    context: dict[str, Any] = {"s": s, "when": _when(s), "charts": charts(s), "sla": s.sla_attainment()}
    return env.get_template("report.html.j2").render(**context)


def write_html(s: Summary, path: Path) -> None:
    path.write_text(render_html(s), encoding="utf-8")
