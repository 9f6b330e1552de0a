"""Which peers may tell the gateway a client's address (X-Forwarded-For): nginx, and only nginx.

TRUSTED_PROXIES lists addresses, CIDR ranges and host names. A host name (the compose service
`frontend`) is resolved again when a peer is not found and the last lookup is a few seconds
old, so a recreated nginx container with a new address is trusted without a gateway restart.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from aiohttp import web

from common.logging import get_logger

log = get_logger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
RELOOKUP_AFTER_S = 5.0


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, spec: str):
        self.networks: list[Network] = []
        self.hosts: list[str] = []
        for item in (part.strip() for part in spec.replace(" ", ",").split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.append(item)
        self.resolved: list[Network] = []
        self.resolved_at = 0.0
        self._lock = asyncio.Lock()

    def _contains(self, address) -> bool:
        return any(address in net for net in (*self.networks, *self.resolved))

    async def _resolve(self) -> None:
        async with self._lock:
            if time.monotonic() - self.resolved_at < RELOOKUP_AFTER_S:
                return
            loop = asyncio.get_running_loop()
            found: list[Network] = []
            for host in self.hosts:
                try:
                    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                except OSError as exc:
                    log.warning("trusted_proxy_unresolved", host=host, error=str(exc))
                    continue
                for info in infos:
                    address = _parse_ip(info[4][0])
                    if address is not None:
                        found.append(ipaddress.ip_network(address))
            self.resolved = found
            self.resolved_at = time.monotonic()

    async def trusts(self, address) -> bool:
        if address is None:
            return False
        if self._contains(address):
            return True
        if self.hosts and time.monotonic() - self.resolved_at >= RELOOKUP_AFTER_S:
            await self._resolve()
            return self._contains(address)
        return False

    async def client_ip(self, request: web.Request) -> str:
        """The first address, from the right of X-Forwarded-For, that is not one of our proxies;
        the peer itself when it is not a trusted proxy or sent no header."""
        peer = _parse_ip(request.remote or "")
        if peer is None:
            return request.remote or "unknown"
        if not await self.trusts(peer):
            return str(peer)
        hops = [h for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            address = _parse_ip(hop)
            if address is None:
                break  # garbage: believe nothing further left
            if not await self.trusts(address):
                return str(address)
            peer = address
        return str(peer)
