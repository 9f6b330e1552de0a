"""Outbound requests a tenant can aim (crawls, page URLs, provider base URLs): one guard.

The address is checked where the connection is made, after DNS resolution, and the socket
goes to exactly the address that was checked, so a name that resolves to a public address
when it is stored and to 127.0.0.1 a minute later (DNS rebinding) is refused too. Redirects
are never followed blindly: the aiohttp fetcher follows them by hand through this guard,
and the SDK clients do not follow them at all.

Refused: loopback, private (RFC 1918, unique local), link-local (cloud metadata lives at
169.254.169.254), CGNAT, multicast, reserved, documentation, benchmarking and unspecified
addresses, and the IPv6 ranges that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
NAT64, 6to4, Teredo), whatever their spelling. ``allow`` networks open some of them on
purpose (tests, an operator's own Ollama).

Two adapters share one resolver and one policy:
- ``GuardedResolver`` for aiohttp (the knowledge fetcher);
- ``guarded_http_client`` for the OpenAI and Anthropic SDKs (httpx): a network backend whose
  ``connect_tcp`` resolves, checks and connects to the checked address; TLS still verifies
  the certificate against the host name.

Tests make ``*.test`` names resolve where they want through ``NETGUARD_TEST_HOSTS`` (a JSON
object, name -> addresses, or a list of answers served one after another to stage a
rebinding). Only ``.test`` names (RFC 6761: never resolvable on the internet) are honoured.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from typing import Iterable
from urllib.parse import urlsplit

import httpcore2
import httpx2
from aiohttp.abc import AbstractResolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Spelled out rather than left to ``is_global``, which calls NAT64, 6to4 and IPv4-compatible
# addresses global although they lead to any IPv4 address, 127.0.0.1 included.
BLOCKED_NETWORKS: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96",            # unspecified, loopback and IPv4-compatible (::a.b.c.d)
    "::ffff:0:0/96",    # IPv4-mapped
    "64:ff9b::/96",     # NAT64
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard
    "2001::/32",        # Teredo
    "2001:db8::/32",    # documentation
    "2002::/16",        # 6to4
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))

TEST_HOSTS_ENV = "NETGUARD_TEST_HOSTS"


class BlockedAddress(OSError):
    """The destination is not a public internet address."""


class UnsafeUrl(ValueError):
    """The URL cannot be called on a tenant's behalf; ``str(exc)`` says why."""


class AddressPolicy:
    def __init__(self, allow: Iterable[str] = ()):
        self.allow: list[Network] = [ipaddress.ip_network(n, strict=False) for n in allow]

    def is_allowed(self, address: Address | str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
        except ValueError:
            return False
        if any(ip.version == net.version and ip in net for net in self.allow):
            return True
        if any(ip.version == net.version and ip in net for net in BLOCKED_NETWORKS):
            return False
        return ip.is_global and not ip.is_multicast

    def check(self, address: str) -> None:
        if not self.is_allowed(address):
            raise BlockedAddress(f"the address {address} is not a public internet address")


PUBLIC_ONLY = AddressPolicy()


def public_address(address: str) -> bool:
    return PUBLIC_ONLY.is_allowed(address)


# --- resolution ------------------------------------------------------------------------------

_test_answers: dict[str, int] = {}


def _test_hosts() -> dict[str, list[list[str]]]:
    raw = os.environ.get(TEST_HOSTS_ENV)
    if not raw:
        return {}
    hosts = {}
    for name, value in json.loads(raw).items():
        if not name.lower().endswith(".test"):
            continue
        answers = value if value and isinstance(value[0], list) else [value]
        hosts[name.lower()] = answers
    return hosts


async def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[tuple[int, str]]:
    """(family, address) for every address ``host`` has, IP literals included."""
    name = host.strip("[]").lower()
    try:
        literal = ipaddress.ip_address(name.split("%", 1)[0])
        return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, name)]
    except ValueError:
        pass
    answers = _test_hosts().get(name)
    if answers is not None:
        turn = _test_answers.get(name, 0)
        _test_answers[name] = turn + 1
        chosen = answers[min(turn, len(answers) - 1)]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in chosen]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, family=family, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{host} does not resolve") from exc
    seen, out = set(), []
    for fam, _type, _proto, _canon, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.add(sockaddr[0])
            out.append((fam, sockaddr[0]))
    return out


async def checked_addresses(host: str, port: int, policy: AddressPolicy,
                            family: int = socket.AF_UNSPEC) -> list[tuple[int, str]]:
    """Resolve and refuse the host if *any* of its addresses is not allowed: a name that mixes
    a public and a private address is how rebinding hides."""
    addresses = await resolve(host, port, family)
    if not addresses:
        raise BlockedAddress(f"{host} has no address")
    for _family, address in addresses:
        policy.check(address)
    return addresses


async def ensure_public_url(url: str, policy: AddressPolicy = PUBLIC_ONLY) -> None:
    """An early, friendly check (when a URL is stored); the real one happens at connect time."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("only http and https URLs with a host are allowed")
    if parts.username or parts.password:
        raise UnsafeUrl("URLs with credentials are not allowed")
    try:
        await checked_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), policy)
    except BlockedAddress:
        raise UnsafeUrl(f"{parts.hostname} is not a public address") from None
    except OSError:
        raise UnsafeUrl(f"{parts.hostname} does not resolve") from None


# --- aiohttp ---------------------------------------------------------------------------------

class GuardedResolver(AbstractResolver):
    """aiohttp connects to exactly the addresses returned here, after they were checked."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        addresses = await checked_addresses(host, port, self.policy, family)
        return [{"hostname": host, "host": address, "port": port, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for fam, address in addresses]

    async def close(self) -> None:
        pass


# --- httpx (the provider SDKs) ---------------------------------------------------------------

class BlockedConnect(httpcore2.ConnectError):
    """httpx maps httpcore's ConnectError to its own, so the SDKs report a connection error;
    ``errors.blocked`` finds this one in the chain."""


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy):
        self.policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options=None) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, self.policy)
        except BlockedAddress as exc:
            raise BlockedConnect(str(exc)) from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for _family, address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        raise last  # type: ignore[misc]

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise BlockedConnect("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, policy: AddressPolicy, limits: httpx2.Limits = httpx2.Limits(max_connections=100,
                                                                                    max_keepalive_connections=20)):
        super().__init__(trust_env=False, limits=limits)
        # the same pool httpx builds, around our backend (httpx has no parameter for it);
        # tests/unit/test_netguard.py connects through it, so a change upstream shows
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy))


def guarded_http_client(policy: AddressPolicy, *, timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """An httpx client for SDKs: connect-time address checks, no redirects followed, no proxy
    from the environment."""
    return httpx2.AsyncClient(transport=GuardedTransport(policy), timeout=timeout, follow_redirects=False,
                              trust_env=False)


def blocked(exc: BaseException | None) -> bool:
    """Whether a connection failed because the guard refused the address (anywhere in the chain)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (BlockedAddress, BlockedConnect)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
