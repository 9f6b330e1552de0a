"""The one outbound guard (common/netguard.py): which addresses it refuses, the URL check
before connecting, the aiohttp resolver and the httpx transport the provider SDKs use."""
import json

import httpx2
import pytest
from aiohttp import web

from common.netguard import (TEST_HOSTS_ENV, AddressPolicy, BlockedAddress, GuardedResolver, UnsafeUrl, blocked,
                             ensure_public_url, guarded_http_client, public_address)
from services.knowledge.fetch import FetchError, check_url

BLOCKED = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
           "224.0.0.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1",
           "::1", "::", "fe80::1", "fd00:ec2::254", "fec0::1", "ff02::1",
           "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:8.8.8.8",   # IPv4-mapped, even of a public address
           "::7f00:1", "::808:808",                                   # IPv4-compatible
           "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::1",     # NAT64
           "2002:7f00:1::1", "2002:808:808::1",                       # 6to4
           "2001:0:4136:e378:8000:63bf:3fff:fdd2",                    # Teredo
           "2001:db8::1"]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", BLOCKED)
def test_private_loopback_metadata_and_ipv4_carrying_ipv6_addresses_are_refused(address):
    assert not public_address(address)
    with pytest.raises(BlockedAddress):
        AddressPolicy().check(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert public_address(address)


def test_the_allow_list_opens_only_its_networks():
    policy = AddressPolicy(["127.0.0.0/8"])
    assert policy.is_allowed("127.0.0.1") and policy.is_allowed("127.0.0.2")
    assert not policy.is_allowed("10.0.0.1") and not policy.is_allowed("169.254.169.254")
    assert not policy.is_allowed("::ffff:127.0.0.1")  # a mapped spelling is not the allowed network


@pytest.mark.parametrize("url", ["http://127.0.0.1:3010/internal", "http://localhost/v1", "ftp://example.com/",
                                 "http://[::1]/", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd",
                                 "http://2130706433/", "http://0x7f000001/", "http://127.1/",
                                 "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/", "http://user:pw@example.com/"])
async def test_urls_that_reach_inside_are_refused_when_stored(url):
    with pytest.raises(UnsafeUrl):
        await ensure_public_url(url)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x", "http://",
                                 "http://user:pw@example.com/", "http://127.0.0.1/", "http://[::1]:8080/",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::ffff:7f00:1]/"])
def test_the_fetcher_refuses_unsafe_urls_before_any_connection(url):
    with pytest.raises(FetchError):
        check_url(url, AddressPolicy())


def test_names_pass_the_url_check_and_are_checked_after_resolution():
    assert check_url("https://example.com/docs", AddressPolicy()).host == "example.com"


async def test_the_resolver_refuses_names_that_resolve_to_private_addresses():
    resolver = GuardedResolver(AddressPolicy())
    # odd spellings of 127.0.0.1 are names to aiohttp; the resolver sees the real address
    for name in ("localhost", "0x7f000001", "2130706433", "127.1"):
        with pytest.raises(BlockedAddress):
            await resolver.resolve(name, 80)


async def test_the_test_hook_stages_a_rebinding_and_only_for_dot_test_names(monkeypatch):
    monkeypatch.setenv(TEST_HOSTS_ENV, json.dumps({"rebind-unit.test": [["93.184.216.34"], ["127.0.0.1"]],
                                                   "example.com": ["127.0.0.1"]}))
    await ensure_public_url("https://rebind-unit.test/v1")  # first answer: public
    with pytest.raises(UnsafeUrl):
        await ensure_public_url("https://rebind-unit.test/v1")  # then loopback, and it stays so
    assert (await GuardedResolver(AddressPolicy(["127.0.0.0/8"])).resolve("rebind-unit.test", 80))[0]["host"] \
        == "127.0.0.1"
    with pytest.raises(BlockedAddress):
        await GuardedResolver(AddressPolicy()).resolve("rebind-unit.test", 80)
    # a real name is never overridden, whatever the variable says
    try:
        answers = await GuardedResolver(AddressPolicy()).resolve("example.com", 80)
    except BlockedAddress:
        pytest.fail("the hook made a real name resolve to loopback")
    except OSError:
        answers = []  # no DNS on this machine
    assert all(a["host"] != "127.0.0.1" for a in answers)


@pytest.fixture
async def loopback_site(aiohttp_server):
    hits: list[str] = []

    async def ok(request):
        hits.append(request.path)
        return web.json_response({"ok": True})

    async def bounce(request):
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect(location=str(request.url.with_path("/inside")))

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_post("/bounce", bounce)
    app.router.add_post("/inside", ok)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.hits = hits
    return server


async def test_the_sdk_transport_checks_the_address_at_connect_time(loopback_site, monkeypatch):
    url = f"http://guarded-unit.test:{loopback_site.port}/ok"
    monkeypatch.setenv(TEST_HOSTS_ENV, json.dumps({"guarded-unit.test": ["127.0.0.1"]}))
    async with guarded_http_client(AddressPolicy(["127.0.0.1/32"]), timeout=httpx2.Timeout(5)) as client:
        assert (await client.get(url)).json() == {"ok": True}  # allowed network: a real connection
    async with guarded_http_client(AddressPolicy(), timeout=httpx2.Timeout(5)) as client:
        for target in (url, f"http://127.0.0.1:{loopback_site.port}/ok", f"http://[::1]:{loopback_site.port}/ok"):
            with pytest.raises(httpx2.ConnectError) as caught:
                await client.get(target)
            assert blocked(caught.value)
    assert loopback_site.hits == ["/ok"]


async def test_the_sdk_transport_does_not_follow_redirects(loopback_site):
    async with guarded_http_client(AddressPolicy(["127.0.0.1/32"]), timeout=httpx2.Timeout(5)) as client:
        response = await client.post(f"http://127.0.0.1:{loopback_site.port}/bounce", json={})
    assert response.status_code == 307 and loopback_site.hits == ["/bounce"]
