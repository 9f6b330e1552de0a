"""Is a URL safe for us to call on a tenant's behalf? (SSRF protection)

Only http(s), and only hosts whose every address is public: no private, loopback, link-local
(cloud metadata lives there), multicast, reserved or unspecified addresses, IPv4-mapped
IPv6 included. Checked after DNS resolution, so a friendly name for 127.0.0.1 is refused too.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    pass


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


async def ensure_public_url(url: str) -> None:
    """Raise UnsafeUrl unless ``url`` is http(s) and its host resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("only http and https URLs with a host are allowed")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"{parts.hostname} does not resolve") from exc
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(public_address(a) for a in addresses):
        raise UnsafeUrl(f"{parts.hostname} is not a public address")
