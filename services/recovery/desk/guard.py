"""The desk's guards: the session cookie, the CSRF token every form carries, and the
security headers of every desk answer.

The session cookie holds the person's sign-in token (HttpOnly, SameSite=Strict, Secure
over https); every request verifies it again through the ops API's
:class:`~services.recovery.identity.Authenticator`, so disabling a person signs them out
at once. The CSRF token is a second random cookie that each form repeats in a hidden field
(double submit); a POST whose field and cookie differ is refused.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION = "desk_session"
CSRF = "desk_csrf"
PREFIX = "/desk"
# No inline script or style: the desk's own files only; inline SVG uses attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, field: str | None) -> bool:
    return bool(cookie and field) and hmac.compare_digest(str(cookie).encode(), str(field).encode())


class SecurityHeaders:
    """Adds :data:`HEADERS` to every answer under ``/desk`` (a page may set its own CSP)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)
