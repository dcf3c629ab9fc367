"""The ``Host`` header allow-list of the server (protection against DNS rebinding).

A web page on another site can make a browser send requests to a server on 127.0.0.1 by pointing
one of its own DNS names at 127.0.0.1; such requests carry that foreign name in ``Host``. The
server answers them 400 unless the name is allowed. Starlette's ``TrustedHostMiddleware`` is not
used: it answers plain text and splits ``[::1]:8000`` at the first colon, so ``::1`` could not be
allowed.
"""

import ipaddress
import json
from typing import Iterable, List, Optional, Sequence

__all__ = ["HostAllowList", "default_allowed_hosts", "is_loopback", "split_host"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> str:
    """The host name of a ``Host`` header value, lower case, without port, brackets or a final
    dot: ``"[::1]:8000" -> "::1"``, ``"LocalHost.:80" -> "localhost"``; "" when malformed."""
    value = value.strip().lower()
    if value.startswith("["):  # IPv6 literal, optionally with a port
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            return ""
        return value[1:end]
    if value.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        return value
    return value.split(":", 1)[0].rstrip(".")


def default_allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> List[str]:
    """The ``Host`` names a server bound to ``bind_host`` accepts (any port).

    Bound to a loopback address: the loopback names (127.0.0.1, localhost, ::1) and the address
    itself. Bound to another address: that address. Bound to all interfaces (0.0.0.0, ::): the
    loopback names. ``extra`` (``--allowed-hosts``) is added to each; ``*`` allows any host and
    ``*.example.com`` any subdomain of example.com.
    """
    hosts: List[str] = []
    bind = bind_host.strip("[]").lower()
    if is_loopback(bind) or bind in _WILDCARD_BINDS:
        hosts.extend(LOOPBACK_NAMES)
    if bind not in _WILDCARD_BINDS:
        hosts.append(bind)
    for name in extra:
        name = name.strip()
        if name:
            hosts.append(name if name == "*" else split_host(name) or name.lower())
    return list(dict.fromkeys(hosts))  # unique, in order


class HostAllowList:
    """ASGI middleware: HTTP requests whose ``Host`` is not in ``allowed_hosts`` (or without one)
    get 400 ``{"error": "host_not_allowed", "detail": ...}``; WebSockets with such a ``Host`` or a
    browser ``Origin`` of another host are refused before the handshake (HTTP 403); other scopes
    (lifespan) pass.

    Args:
        app: the ASGI app to protect.
        allowed_hosts: host names (no port); ``*`` allows any, ``*.example.com`` the subdomains
            of example.com.
    """

    def __init__(self, app, allowed_hosts: Sequence[str]):
        self.app = app
        self.allowed = [h.lower() for h in allowed_hosts]
        self.any = "*" in self.allowed
        self.exact = {h for h in self.allowed if not h.startswith("*")}
        self.suffixes = tuple(h[1:] for h in self.allowed if h.startswith("*."))

    def allows(self, host_header: Optional[str]) -> bool:
        if self.any:
            return True
        host = split_host(host_header or "")
        if not host:
            return False
        return host in self.exact or bool(self.suffixes and host.endswith(self.suffixes))

    def origin_allowed(self, origin: Optional[str]) -> bool:
        """A WebSocket's ``Origin`` (sent by browsers, not checked by them for WebSockets): absent
        (not a browser), ``null`` refused, else its host must be allowed (cross-site WebSocket
        hijacking: a page on another site opening the stream of a server on 127.0.0.1)."""
        if origin is None or self.any:
            return True
        host = origin.split("://", 1)[1] if "://" in origin else ""
        return bool(host) and self.allows(host.split("/", 1)[0])

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"host")
        value = raw.decode("latin-1") if raw is not None else None
        if scope["type"] == "websocket":
            origin = headers.get(b"origin")
            if self.allows(value) and self.origin_allowed(
                None if origin is None else origin.decode("latin-1")
            ):
                await self.app(scope, receive, send)
            else:  # closed before the handshake: the client gets HTTP 403
                await send({"type": "websocket.close", "code": 1008})
            return
        if self.allows(value):
            await self.app(scope, receive, send)
            return
        shown = "no Host header" if value is None else f"Host {value!r}"
        body = json.dumps(
            {
                "error": "host_not_allowed",
                "detail": f"{shown} is not allowed by this server (DNS-rebinding protection); "
                f"allowed hosts: {', '.join(self.allowed)} (the server's --allowed-hosts)",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
