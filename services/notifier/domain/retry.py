"""How patiently an email is retried, and which SMTP failures are worth retrying.

The schedule: exponential backoff with *equal jitter*, half fixed and half random. The
wait after failed attempt ``n`` (0-based) has a fixed floor ``b = min(max_s, base_s * 2**n)``
and a random part of up to ``b`` more, never past ``max_s``::

    wait_n = min(max_s, b + uniform(0, b))

Why not full jitter (``uniform(0, b)``): its waits can all come out near zero, so a mail
server that is down for ten minutes could see every attempt fail and the customer never
get the apology. The fixed half makes the patience a guarantee: with the defaults (10
attempts, base 5 s, cap 900 s) the nine waits are at least 5+10+...+640+900 = 2,175 s, so
every schedule spans over 36 minutes (Knock retries 8 times over 30 minutes; we are at
least that patient), about 45 minutes on average and at most about 51. The random half
still spreads a herd of failed emails apart; waits at the cap are exactly the cap, by then
the earlier random halves have spread the herd.

SMTP replies: 5xx is permanent (fail at once), 4xx temporary (retry), as RFC 5321 says.
A refused connection or a timeout is temporary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def _check(max_attempts: int, base_s: float, max_s: float) -> None:
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if base_s <= 0 or max_s < base_s:
        raise ValueError("need 0 < base_s <= max_s")


def _floors(max_attempts: int, base_s: float, max_s: float) -> list[float]:
    # min() before the power would overflow a float for a very large attempt count.
    floors: list[float] = []
    step = base_s
    for _ in range(max_attempts - 1):
        floors.append(min(max_s, step))
        step = min(max_s, step * 2)
    return floors


def backoff_delays(max_attempts: int, base_s: float, max_s: float, rng: random.Random) -> list[float]:
    """The waits, in seconds, before attempts 2..``max_attempts`` (so one fewer than attempts).

    ``rng`` is an input so a test (or a replay) gets the same schedule from the same seed.
    """
    _check(max_attempts, base_s, max_s)
    return [min(max_s, b + rng.uniform(0, b)) for b in _floors(max_attempts, base_s, max_s)]


@dataclass(frozen=True)
class RetrySpan:
    """The time from the first attempt to the last, in seconds: least, expected, most."""

    floor_s: float
    expected_s: float
    ceiling_s: float


def _expected_wait(b: float, max_s: float) -> float:
    # E[min(max_s, b + U(0, b))]: below the cap the mean is 1.5 b; where the window
    # [b, 2b] crosses the cap, the part past it counts as max_s.
    if 2 * b <= max_s:
        return 1.5 * b
    below = max_s - b
    return (below / b) * (b + below / 2) + ((b - below) / b) * max_s


def retry_span(max_attempts: int, base_s: float, max_s: float) -> RetrySpan:
    """The span of :func:`backoff_delays` for these settings, computed without randomness."""
    _check(max_attempts, base_s, max_s)
    floors = _floors(max_attempts, base_s, max_s)
    return RetrySpan(
        floor_s=sum(floors),
        expected_s=sum(_expected_wait(b, max_s) for b in floors),
        ceiling_s=sum(min(max_s, 2 * b) for b in floors),
    )


def is_permanent_reply(code: int) -> bool:
    """Whether an SMTP reply code means the same email will never be accepted (5xx)."""
    return 500 <= code <= 599
