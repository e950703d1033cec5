"""Who is asking: the verified identity behind every ops API request and desk command.

A person signs in one of two ways (docs/security.md):

- the built-in issuer: people kept in PostgreSQL (``people``), each with a role, signing in
  with a random 256-bit token that ``recoveryctl agents token`` issues. Only the token's
  SHA-256 is stored; disabling the person stops every token of theirs at once.
- an identity provider (OIDC): a JWT signed by the issuer, checked against its JWKS
  (fetched, cached, fetched again when a token names a key not seen yet) with PyJWT, its
  algorithm on an allow-list (RS256, ES256, EdDSA: never ``none``, never an HMAC one), its
  issuer, audience and expiry checked; the role comes from a claim. A subject that is also
  a disabled person of the built-in issuer is refused.

``OPS_API_TOKEN`` is a service credential: it reads, it never decides.

Roles: an ``agent`` reads and decides (within the approval limits), a ``supervisor`` also
decides over them and approves or rejects an agent's pending decision, an ``auditor`` reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import asyncpg
import httpx
import jwt
from pydantic import SecretStr

from services.common.contract.limits import MAX_ID_LENGTH
from services.common.logging import get_logger

log = get_logger(__name__)

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
Role = Literal["agent", "supervisor", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
Action = Literal["read", "decide", "approve", "erase"]
PERMISSIONS: Mapping[str, frozenset[Action]] = {
    "agent": frozenset({"read", "decide"}),
    "supervisor": frozenset({"read", "decide", "approve", "erase"}),
    "auditor": frozenset({"read"}),
    "service": frozenset({"read"}),
}
# A person's id as the built-in issuer keeps it (the migration's CHECK says the same).
PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
TOKEN_PREFIX = "rsk_"  # noqa: S105 - the prefix that tells a sign-in token, no secret
TOKEN_BYTES = 32  # 256 bits
_TOKEN = re.compile(r"^" + TOKEN_PREFIX + r"[A-Za-z0-9_-]{43}$")
ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
# The key type (and curve) each allowed algorithm's key must have.
_KEY_TYPES: Mapping[str, tuple[str, str | None]] = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"),
                                                    "EdDSA": ("OKP", None)}  # fmt: skip


class Unauthenticated(Exception):
    """No identity could be verified (the API answers 401)."""


class Forbidden(Exception):
    """The identity's role does not allow the action (the API answers 403)."""


class IdentityUnavailable(Exception):
    """The identity provider's keys could not be fetched (the API answers 503)."""


@dataclass(frozen=True)
class Identity:
    """A verified caller: a person with a role, or the read-only service credential."""

    person_id: str | None
    role: Role | Literal["service"]
    issuer: Literal["local", "oidc", "service"]

    def can(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]

    @property
    def decides_as(self) -> Literal["agent", "supervisor"]:
        """``supervisor`` for a supervisor; anyone else's decision is held to the approval limits."""
        return "supervisor" if self.role == "supervisor" else "agent"

    def require(self, action: Action) -> str:
        """The id of the person, if their role allows ``action``; else raise :class:`Forbidden`
        (the service credential only reads: it is no person)."""
        if not self.can(action) or self.person_id is None:
            raise Forbidden(f"role {self.role} may not {action}" if self.person_id else "only a person may " + action)
        return self.person_id


@dataclass(frozen=True)
class Person:
    id: str
    role: Role
    name: str | None
    enabled: bool


def new_token() -> str:
    """A fresh sign-in token: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class PersonExists(Exception):
    """``agents add`` for an id that is taken."""


class People:
    """The built-in issuer's people and their tokens, in PostgreSQL."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, person_id: str, role: Role, name: str | None = None) -> Person:
        if not PERSON_ID.match(person_id):
            raise ValueError(f"a person's id is letters, digits and ._@- (at most 128), not {person_id!r}")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        try:
            await self.db.execute("INSERT INTO people (id, role, name) VALUES ($1, $2, $3)", person_id, role, name)
        except asyncpg.UniqueViolationError:
            raise PersonExists(f"person {person_id} exists") from None
        return Person(person_id, role, name, True)

    async def get(self, person_id: str) -> Person | None:
        row = await self.db.fetchrow("SELECT id, role, name, enabled FROM people WHERE id = $1", person_id)
        return None if row is None else Person(row["id"], row["role"], row["name"], row["enabled"])

    async def all(self) -> list[Person]:
        rows = await self.db.fetch("SELECT id, role, name, enabled FROM people ORDER BY id")
        return [Person(r["id"], r["role"], r["name"], r["enabled"]) for r in rows]

    async def disable(self, person_id: str) -> bool:
        """Disable the person (their tokens stop working); False: no such person."""
        done = await self.db.execute(
            "UPDATE people SET enabled = false, disabled_at = coalesce(disabled_at, now()) WHERE id = $1", person_id
        )
        return bool(done.endswith(" 1"))

    async def issue_token(self, person_id: str) -> str:
        """A new sign-in token for an enabled person (shown once: only its digest is kept)."""
        person = await self.get(person_id)
        if person is None or not person.enabled:
            raise Unauthenticated(f"no enabled person {person_id}")
        token = new_token()
        await self.db.execute("INSERT INTO person_tokens (token_sha256, person_id) VALUES ($1, $2)",
                              token_digest(token), person_id)  # fmt: skip
        return token

    async def by_token(self, token: str) -> Person | None:
        """The enabled person the token was issued to, or None."""
        if not _TOKEN.match(token):
            return None
        row = await self.db.fetchrow(
            "SELECT p.id, p.role, p.name, p.enabled FROM person_tokens t JOIN people p ON p.id = t.person_id"
            " WHERE t.token_sha256 = $1 AND p.enabled",
            token_digest(token),
        )
        return None if row is None else Person(row["id"], row["role"], row["name"], row["enabled"])

    async def acting(self, person_id: str, action: Action) -> Identity:
        """The identity of a person acting from the command line, who must exist, be enabled
        and hold a role that allows ``action`` (raise :class:`Unauthenticated`, :class:`Forbidden`)."""
        person = await self.get(person_id)
        if person is None or not person.enabled:
            raise Unauthenticated(f"no enabled person {person_id} (see `recoveryctl agents list`)")
        identity = Identity(person.id, person.role, "local")
        identity.require(action)
        return identity


# --------------------------------------------------------------------------- OIDC


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    roles_claim: str = "roles"
    leeway_s: float = 30
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS


class Jwks:
    """The issuer's signing keys by ``kid``: fetched on first use, again after ``ttl_s``, and
    again (at most every ``min_refresh_s``) when a token names a key not among them."""

    def __init__(self, url: str, *, ttl_s: float = 3600, min_refresh_s: float = 10, timeout_s: float = 5) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.timeout_s = timeout_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> dict[str, Any]:
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self.ttl_s
        if stale or (kid not in self._keys and now - (self._fetched_at or 0) >= self.min_refresh_s):
            await self._refresh(now)
        found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated("the token's signing key is not the issuer's")
        return found

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= asked_at:
                return  # another request fetched them meanwhile
            try:
                async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                    r = await client.get(self.url)
                    r.raise_for_status()
                    body = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("identity.jwks_unavailable", error=type(exc).__name__)
                if self._fetched_at is None:
                    raise IdentityUnavailable("the identity provider's keys could not be fetched") from None
                return  # keep the keys we have
            keys = body.get("keys") if isinstance(body, dict) else None
            self._keys = {k["kid"]: k for k in keys or [] if isinstance(k, dict) and isinstance(k.get("kid"), str)}
            self._fetched_at = time.monotonic()


class OidcVerifier:
    """JWTs of one issuer and audience, checked with PyJWT against the issuer's JWKS."""

    def __init__(self, config: OidcConfig, jwks: Jwks | None = None) -> None:
        bad = set(config.algorithms) - set(ALLOWED_ALGORITHMS)
        if bad:
            raise ValueError(f"algorithms not allowed: {', '.join(sorted(bad))}")
        self.config = config
        self.jwks = jwks or Jwks(config.jwks_url)

    async def verify(self, token: str) -> Identity:
        c = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in c.algorithms or not isinstance(kid, str):
            raise Unauthenticated("the token's algorithm or key id is not accepted")
        jwk = await self.jwks.key(kid)
        kty, crv = _KEY_TYPES[alg]
        if jwk.get("kty") != kty or (crv and jwk.get("crv") != crv) or jwk.get("alg", alg) != alg:
            raise Unauthenticated("the token's algorithm does not match its key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(token, key=key, algorithms=[alg], audience=c.audience, issuer=c.issuer,
                                leeway=c.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]})  # fmt: skip
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_ID_LENGTH or re.search(r"\s", subject):
            raise Unauthenticated("the token's subject is not usable as a person's id")
        return Identity(subject, _role(_claim(claims, c.roles_claim)), "oidc")


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``realm_access.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _role(value: Any) -> Role:
    """The strongest of our roles among the claim's (a list, or names separated by spaces)."""
    names = set(value.split()) if isinstance(value, str) else {v for v in value or () if isinstance(v, str)}
    for role in ("supervisor", "agent", "auditor"):
        if role in names:
            return role
    raise Forbidden("the token carries none of the roles agent, supervisor, auditor")


# --------------------------------------------------------------------------- the authenticator


class Authenticator:
    """Turns a bearer token into an :class:`Identity`: the service credential, a token of the
    built-in issuer (``people`` in the database), or a JWT of the identity provider."""

    def __init__(
        self,
        get_db: Callable[[], Db] | None,
        *,
        local: bool = True,
        service_token: SecretStr | None = None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        secret = service_token.get_secret_value() if service_token is not None else ""
        self.service_token = secret.encode() if secret else None
        self.get_db = get_db
        self.local = local and get_db is not None
        self.oidc = oidc

    @property
    def enabled(self) -> bool:
        """False when nobody can sign in (the API then answers 503)."""
        return self.local or self.service_token is not None or self.oidc is not None

    async def authenticate(self, token: str) -> Identity:
        if self.service_token is not None and hmac.compare_digest(token.encode(), self.service_token):
            return Identity(None, "service", "service")
        if token.startswith(TOKEN_PREFIX) and self.local and self.get_db is not None:
            person = await People(self.get_db()).by_token(token)
            if person is None:
                raise Unauthenticated("unknown token, or its person is disabled")
            return Identity(person.id, person.role, "local")
        if self.oidc is not None and token.count(".") == 2:
            identity = await self.oidc.verify(token)
            if self.get_db is not None and identity.person_id is not None:
                known = await People(self.get_db()).get(identity.person_id)
                if known is not None and not known.enabled:
                    raise Unauthenticated("the person is disabled")
            return identity
        raise Unauthenticated("missing or invalid bearer token")
