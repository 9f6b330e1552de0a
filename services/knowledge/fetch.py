"""Fetching tenant-supplied URLs without becoming a proxy into our own network (SSRF).

- Only ``http``/``https``, no credentials in the URL.
- Addresses are checked by ``common.netguard`` (the one outbound guard): every address a
  name resolves to is checked inside the connector's resolver, so the connection goes to
  exactly the address that was checked (no DNS-rebinding window); IP literals, which aiohttp
  does not resolve, are checked up front. ``allow_networks`` exists only so tests can crawl a
  site on loopback.
- Redirects are followed by hand, a bounded number of times, each hop checked again.
- Size cap while streaming, on the wire and again after decoding (a gzip body is inflated
  by ``common.decompress``, never whole), a total timeout, and a content-type allow-list.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from common.decompress import Corrupt, TooLarge, decode_content
from common.netguard import AddressPolicy, BlockedAddress, GuardedResolver, blocked

PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown",
              "application/pdf",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
SITEMAP_TYPES = ("application/xml", "text/xml", "text/plain", "application/x-gzip", "application/gzip")


class FetchError(Exception):
    """The URL cannot be fetched; ``str(exc)`` is the reason shown to the tenant."""


@dataclass
class Fetched:
    url: str
    status: int
    content_type: str
    body: bytes


def check_url(url: str, policy: AddressPolicy) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise FetchError("the URL is not valid") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError("only http and https URLs can be fetched")
    if not parsed.host:
        raise FetchError("the URL has no host")
    if parsed.user or parsed.password:
        raise FetchError("URLs with credentials are not fetched")
    host = parsed.host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return parsed  # a name: checked after resolution, in GuardedResolver
    if not policy.is_allowed(host.split("%", 1)[0]):
        raise FetchError(f"the URL points to a private or reserved address ({host})")
    return parsed


class Fetcher:
    def __init__(self, *, allow_networks: Iterable[str] = (), timeout_s: float = 15.0,
                 max_bytes: int = 10 * 1024 ** 2, max_redirects: int = 5,
                 user_agent: str = "avatarchat-knowledge"):
        self.policy = AddressPolicy(allow_networks)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy), limit=20,
                                             ttl_dns_cache=None, use_dns_cache=False)
            # bodies are decoded here, bounded, not by aiohttp (which inflates each piece whole)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                                  headers={"User-Agent": self.user_agent,
                                                           "Accept-Encoding": "gzip, deflate"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, *, accept: tuple[str, ...] = PAGE_TYPES,
                    max_bytes: int | None = None) -> Fetched:
        limit = max_bytes or self.max_bytes
        current = url
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=min(10.0, self.timeout_s))
        for _hop in range(self.max_redirects + 1):
            target = check_url(current, self.policy)
            try:
                async with self._client().get(target, allow_redirects=False, timeout=timeout,
                                              headers={"Accept": ", ".join(accept) + ", */*;q=0.1"}) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchError(f"a redirect ({resp.status}) without a Location")
                        current = urljoin(str(target), location)
                        continue
                    if resp.status >= 400:
                        raise FetchError(f"{target} answered HTTP {resp.status}")
                    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if content_type and content_type not in accept:
                        raise FetchError(f"{target} is {content_type!r}, which is not a supported document type")
                    if resp.content_length is not None and resp.content_length > limit:
                        raise FetchError(f"{target} is larger than {limit} bytes")
                    body = bytearray()
                    async for piece in resp.content.iter_chunked(65536):
                        body.extend(piece)
                        if len(body) > limit:
                            raise FetchError(f"{target} is larger than {limit} bytes")
                    try:
                        decoded = decode_content(bytes(body), resp.headers.get("Content-Encoding", ""), limit)
                    except TooLarge:
                        raise FetchError(f"{target} is larger than {limit} bytes once decompressed") from None
                    except Corrupt as exc:
                        raise FetchError(f"{target} sent a body that cannot be decoded: {exc}") from None
                    return Fetched(str(target), resp.status, resp.headers.get("Content-Type", ""), decoded)
            except FetchError:
                raise
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress) or blocked(exc):
                    raise FetchError(f"{target.host} resolves to a private or reserved address") from None
                raise FetchError(f"could not connect to {target.host}") from None
            except BlockedAddress:
                raise FetchError(f"{target.host} resolves to a private or reserved address") from None
            except TimeoutError:
                raise FetchError(f"{target} did not answer within {self.timeout_s:g} s") from None
            except (aiohttp.ClientError, ValueError, OSError) as exc:
                raise FetchError(f"fetching {target} failed ({type(exc).__name__})") from None
        raise FetchError(f"more than {self.max_redirects} redirects")
