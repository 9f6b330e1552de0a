"""Site crawls: from a start URL (breadth first) or a sitemap, one host only.

Bounded in pages and depth, polite (robots.txt through protego, its Crawl-delay, and a
per-host rate), with glob include/exclude patterns on the path. Each page becomes a
``crawl`` document carrying the fetched HTML, queued for ingestion through the outbox like
any upload. A crawl runs as a task of the process that accepted it; if that process stops,
the crawl is marked ``interrupted`` and can be started again (pages already queued stay).
"""
from __future__ import annotations

import asyncio
import fnmatch
import io
import time
import uuid
from collections import deque
from urllib.parse import urldefrag, urljoin, urlsplit

from pydantic import BaseModel, Field, model_validator

from common.decompress import GZIP_MAGIC, Corrupt, TooLarge, inflate
from common.logging import bind_contextvars, get_logger
from services.knowledge import repository as repo
from services.knowledge.extract import ExtractionError
from services.knowledge.fetch import PAGE_TYPES, SITEMAP_TYPES, Fetcher, FetchError

log = get_logger(__name__)
MAX_SITEMAPS = 20
# the sitemap protocol's own limits: 50 MB uncompressed, 50,000 URLs
MAX_SITEMAP_BYTES = 50 * 1024 ** 2
MAX_SITEMAP_URLS = 50_000
MAX_PAGE_LINKS = 5_000
# a running crawl updates its heartbeat with every page (a page waits at most ~75 s: the
# robots delay cap and the fetch timeout); past this, its process is taken to have died
CRAWL_STALE_S = 300.0


class CrawlOptions(BaseModel):
    start_url: str | None = Field(None, max_length=2048)
    sitemap_url: str | None = Field(None, max_length=2048)
    max_pages: int = Field(50, ge=1)
    max_depth: int = Field(2, ge=0)
    include: list[str] = Field(default_factory=list, max_length=50)
    exclude: list[str] = Field(default_factory=list, max_length=50)
    rate_per_second: float = Field(1.0, gt=0, le=10)

    @model_validator(mode="after")
    def _one_source(self):
        if not (self.start_url or self.sitemap_url):
            raise ValueError("give a start_url or a sitemap_url")
        for url in (self.start_url, self.sitemap_url):
            if url and urlsplit(url).scheme not in ("http", "https"):
                raise ValueError("only http and https URLs can be crawled")
        return self


def path_allowed(url: str, include: list[str], exclude: list[str]) -> bool:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in exclude):
        return False
    return not include or any(fnmatch.fnmatchcase(path, pattern) for pattern in include)


def normalise(url: str) -> str:
    url, _fragment = urldefrag(url)
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), path=parts.path or "/").geturl()


def page_links(html: bytes, base_url: str) -> list[str]:
    """Runs in the parser worker (``Extractor.run``): lxml on a hostile page holds the GIL."""
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(html)
    except Exception:  # noqa: BLE001 - unparsable page: no links
        return []
    base_href = tree.xpath("//base/@href")
    base = urljoin(base_url, base_href[0].strip()) if base_href else base_url
    links = []
    for href in tree.xpath("//a/@href"):
        href = href.strip()
        if href and not href.startswith(("mailto:", "javascript:", "tel:", "#")):
            links.append(normalise(urljoin(base, href)))
            if len(links) >= MAX_PAGE_LINKS:
                break
    return links


def sitemap_locations(body: bytes) -> tuple[list[str], list[str]]:
    """(page URLs, nested sitemap URLs) of a sitemap or sitemap index, gzipped or not, at
    most ``MAX_SITEMAP_URLS``. Runs in the parser worker; the XML is read as a stream, so
    memory stays flat whatever the sitemap holds."""
    from lxml import etree

    if body[:2] == GZIP_MAGIC:
        try:
            body = inflate(body, MAX_SITEMAP_BYTES)
        except TooLarge:
            raise ExtractionError(f"the sitemap expands to more than {MAX_SITEMAP_BYTES // 2 ** 20} MB "
                                  "when decompressed") from None
        except Corrupt as exc:
            raise ExtractionError(f"the gzipped sitemap is corrupt: {exc}") from None
    if len(body) > MAX_SITEMAP_BYTES:
        raise ExtractionError(f"the sitemap is larger than {MAX_SITEMAP_BYTES // 2 ** 20} MB")
    pages: list[str] = []
    nested: list[str] = []
    try:
        for _event, el in etree.iterparse(io.BytesIO(body), events=("end",), resolve_entities=False,
                                          no_network=True, load_dtd=False, huge_tree=False):
            kind = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
            if kind not in ("url", "sitemap"):
                continue
            loc = (el.findtext("{*}loc") or "").strip()
            if loc:
                (pages if kind == "url" else nested).append(loc)
            el.clear()  # finished entries need not stay in memory
            parent = el.getparent()
            while parent is not None and el.getprevious() is not None:
                del parent[0]
            if len(pages) + len(nested) >= MAX_SITEMAP_URLS:
                break
    except etree.XMLSyntaxError:
        if pages or nested:
            return pages, nested
        # plain-text sitemaps are one URL per line
        lines = (line.strip() for line in body.decode("utf-8", "replace").splitlines())
        return [line for line in lines if line.startswith(("http://", "https://"))][:MAX_SITEMAP_URLS], []
    return pages, nested


class Robots:
    """robots.txt per host, through the same guarded fetcher as everything else."""

    def __init__(self, fetcher: Fetcher, user_agent: str):
        self.fetcher = fetcher
        self.user_agent = user_agent
        self._rules: dict[str, object] = {}
        self.errors: dict[str, str] = {}

    async def rules(self, url: str):
        from protego import Protego

        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._rules:
            try:
                fetched = await self.fetcher.fetch(origin + "/robots.txt", accept=("text/plain",),
                                                   max_bytes=512 * 1024)
                self._rules[origin] = Protego.parse(fetched.body.decode("utf-8", "replace"))
            except FetchError as exc:
                # no robots.txt (4xx) allows everything; an unreachable one forbids crawling
                allowed = " answered HTTP 4" in str(exc)
                if not allowed:
                    self.errors[origin] = str(exc)
                self._rules[origin] = Protego.parse("" if allowed else "User-agent: *\nDisallow: /")
        return self._rules[origin]

    async def allowed(self, url: str) -> bool:
        return (await self.rules(url)).can_fetch(url, self.user_agent)

    async def delay(self, url: str) -> float:
        return float((await self.rules(url)).crawl_delay(self.user_agent) or 0)


class HostRate:
    """At most one request per ``interval`` seconds to a host."""

    def __init__(self, interval: float):
        self.interval = interval
        self._next: dict[str, float] = {}

    async def wait(self, url: str, extra_delay: float = 0.0) -> None:
        host = urlsplit(url).netloc
        now = time.monotonic()
        at = max(now, self._next.get(host, now))
        self._next[host] = at + max(self.interval, min(extra_delay, 60.0))
        if at > now:
            await asyncio.sleep(at - now)


async def run_crawl(deps, crawl_id: uuid.UUID, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                    options: CrawlOptions, max_documents: int | None = None) -> None:
    from services.knowledge import service  # the use case that queues a document

    bind_contextvars(crawl_id=str(crawl_id))
    settings = deps.settings
    max_pages = min(options.max_pages, settings.crawl_max_pages_limit)
    max_depth = min(options.max_depth, settings.crawl_max_depth_limit)
    robots = Robots(deps.fetcher, settings.fetch_user_agent)
    rate = HostRate(1.0 / options.rate_per_second)
    seen = queued = skipped = 0
    frontier: deque[tuple[str, int]] = deque()
    visited: set[str] = set()

    async def progress(status: str | None = None, reason: str | None = None) -> None:
        async with deps.pool.acquire() as conn:
            await repo.update_crawl(conn, crawl_id, seen=seen, queued=queued, skipped=skipped,
                                    status=status, reason=reason)

    try:
        if options.sitemap_url:
            sitemaps, pages = [normalise(options.sitemap_url)], []
            host = urlsplit(sitemaps[0]).netloc
            fetched_sitemaps = 0
            while sitemaps and fetched_sitemaps < MAX_SITEMAPS and len(pages) < max_pages * 4:
                fetched = await deps.fetcher.fetch(sitemaps.pop(0), accept=SITEMAP_TYPES)
                fetched_sitemaps += 1
                more, nested = await deps.extractor.run(sitemap_locations, fetched.body)
                pages.extend(more)
                sitemaps.extend(n for n in nested if urlsplit(n).netloc == host)
            frontier.extend((normalise(p), max_depth) for p in pages if urlsplit(p).netloc.lower() == host)
            if options.start_url:
                frontier.appendleft((normalise(options.start_url), 0))
        else:
            frontier.append((normalise(options.start_url), 0))
            host = urlsplit(frontier[0][0]).netloc
        while frontier and seen < max_pages:
            url, depth = frontier.popleft()
            if url in visited:
                continue
            visited.add(url)
            if not path_allowed(url, [], options.exclude) or not await robots.allowed(url):
                skipped += 1
                continue
            await rate.wait(url, await robots.delay(url))
            seen += 1
            try:
                fetched = await deps.fetcher.fetch(url, accept=PAGE_TYPES)
            except FetchError as exc:
                log.info("crawl_page_skipped", url=url, reason=str(exc))
                skipped += 1
                await progress()
                continue
            is_html = fetched.content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
            if is_html and depth < max_depth:
                try:
                    links = await deps.extractor.run(page_links, fetched.body, fetched.url)
                except ExtractionError:
                    links = []  # a page the parser cannot take is still indexed, just not followed
                for link in links:
                    # the frontier is bounded too: a page with 100k links costs no memory
                    if urlsplit(link).netloc == host and link not in visited and len(frontier) < 20 * max_pages:
                        frontier.append((link, depth + 1))
            if path_allowed(url, options.include, options.exclude):
                try:
                    document = await service.add_url(deps, tenant_id, chatbot_id, url, None, source="crawl",
                                                     crawl_id=crawl_id, raw=fetched.body,
                                                     content_type=fetched.content_type, conflict_ok=True,
                                                     max_documents=max_documents)
                except service.KnowledgeError as exc:
                    if exc.code != "plan_limit_reached":
                        raise
                    # uploads meanwhile took the room this crawl started with
                    await progress("completed", f"stopped early: {exc.message}")
                    log.info("crawl_stopped_at_plan_limit", queued=queued)
                    return
                if document is not None:
                    queued += 1
                else:
                    skipped += 1  # already a document of this chatbot
            else:
                skipped += 1
            await progress()
        if not queued and robots.errors:
            # nothing crawled because the site could not be reached at all: say why
            await progress("failed", "robots.txt could not be read: " + next(iter(robots.errors.values())))
            return
        await progress("completed")
        log.info("crawl_completed", pages=seen, queued=queued, skipped=skipped)
    except asyncio.CancelledError:
        await asyncio.shield(progress("interrupted", "the knowledge service stopped during the crawl"))
        raise
    except (FetchError, ExtractionError) as exc:
        await progress("failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - a crawl fails visibly, it never kills the service
        log.exception("crawl_failed")
        await progress("failed", f"{type(exc).__name__}: {str(exc)[:300]}")


async def start_crawl(deps, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, options: CrawlOptions, *,
                      max_documents: int | None = None):
    """Bounded three ways: pages per crawl (the tenant's ask, the server's cap and the room
    left under the plan), running crawls per tenant, and every page counted as a document
    in its own insert transaction."""
    from services.knowledge import service

    crawl_id = uuid.uuid4()
    limit = deps.settings.crawls_per_tenant
    async with deps.pool.acquire() as conn, conn.transaction():
        await service.knowledge_base(conn, tenant_id, chatbot_id)
        await repo.lock_tenant(conn, tenant_id)
        room = await service.make_room(conn, tenant_id, max_documents)
        running = await repo.count_running_crawls(conn, tenant_id, stale_after_s=CRAWL_STALE_S)
        if running >= limit:
            raise service.KnowledgeError(409, "too_many_crawls",
                                         f"{running} crawls are running; a tenant may run {limit} at once",
                                         {"running": running, "max": limit})
        max_pages = min(options.max_pages, deps.settings.crawl_max_pages_limit, room or options.max_pages)
        options = options.model_copy(update={"max_pages": max_pages})
        crawl = await repo.insert_crawl(conn, crawl_id=crawl_id, tenant_id=tenant_id, chatbot_id=chatbot_id,
                                        start_url=options.start_url or options.sitemap_url,
                                        options=options.model_dump(mode="json"))
    task = asyncio.create_task(run_crawl(deps, crawl_id, tenant_id, chatbot_id, options, max_documents),
                               name=f"crawl-{crawl_id}")
    deps.crawls[crawl_id] = task
    task.add_done_callback(lambda _t: deps.crawls.pop(crawl_id, None))
    return crawl
