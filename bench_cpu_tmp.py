import json, time, sys, os
if os.environ.get('GCT'):
    import gc; gc.freeze(); gc.set_threshold(50_000, 10, 10)
from datetime import UTC, datetime
from bench.recovery import _pair
from services.common.records import InboundRecord
from services.common.kafka import decode_batch
from services.common.contract.events import ChargePosted, ComplaintFiled
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService, _Work, ACCEPTED, RELAY, REGISTRY, case_stream
from services.recovery.domain.facts import ChargeFacts, CustomerHistory
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.common.clock import system_clock
from services.common.outbox import outbox_message
N = int(os.environ.get("N", "2000"))
pairs = [_pair(i, "p") for i in range(N)]
recs = [InboundRecord("t", 0, 0, e["subject"].encode(), json.dumps(e).encode()) for _, e in pairs]
charges = {p[0]["data"]["charge_id"]: ChargeFacts.from_posted(ChargePosted.model_validate(p[0]["data"])) for p in pairs}
svc = RecoveryService(None, CommonSettings(), load_policy(), load_roster(), system_clock)
def run():
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    good, dead = decode_batch(recs, ACCEPTED, source="s", now=now)
    t1 = time.perf_counter()
    w = _Work(now=now); w.charges = charges
    for e in good:
        svc._on_complaint(w, e.envelope, e.data)
    t2 = time.perf_counter()
    from services.common.records import to_new_event
    import services.common.eventstore.postgres as pg
    enc = (lambda e: (pg._json(e.data), pg._json(e.metadata))) if hasattr(pg, '_json') else (lambda e: (json.dumps(e.data), json.dumps(e.metadata)))
    n = 0
    for cid, items in w.pending.items():
        evs = [to_new_event(ev) for _, ev in items]
        for e in evs: enc(e)
        for data, ev in items:
            if data.TOPIC != "internal":
                outbox_message(ev, "x")
    t3 = time.perf_counter()
    return (t1-t0)/N*1e6, (t2-t1)/N*1e6, (t3-t2)/N*1e6
res = [run() for _ in range(int(__import__("os").environ.get("R", "7")))]
best = [min(r[i] for r in res) for i in range(3)]
print(f"decode {best[0]:.0f} us  decide {best[1]:.0f} us  commit-python {best[2]:.0f} us  total {sum(best):.0f} us per complaint")
