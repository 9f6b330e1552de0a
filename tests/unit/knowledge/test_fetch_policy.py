import pytest

from services.knowledge.fetch import AddressPolicy, BlockedAddress, FetchError, GuardedResolver, check_url

BLOCKED = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1",
           "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
           "2002:7f00:1::1", "198.18.0.1"]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", BLOCKED)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address):
    assert not AddressPolicy().is_allowed(address)
    with pytest.raises(BlockedAddress):
        AddressPolicy().check(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert AddressPolicy().is_allowed(address)


def test_the_allow_list_opens_only_its_networks():
    policy = AddressPolicy(["127.0.0.0/8"])
    assert policy.is_allowed("127.0.0.1") and policy.is_allowed("::ffff:127.0.0.2")
    assert not policy.is_allowed("10.0.0.1") and not policy.is_allowed("169.254.169.254")


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x", "http://",
                                 "http://user:pw@example.com/", "http://127.0.0.1/", "http://[::1]:8080/",
                                 "http://169.254.169.254/latest/meta-data/"])
def test_unsafe_urls_are_refused_before_any_connection(url):
    with pytest.raises(FetchError):
        check_url(url, AddressPolicy())


def test_names_pass_the_url_check_and_are_checked_after_resolution():
    assert check_url("https://example.com/docs", AddressPolicy()).host == "example.com"


async def test_the_resolver_refuses_names_that_resolve_to_private_addresses():
    resolver = GuardedResolver(AddressPolicy())
    try:
        # odd spellings of 127.0.0.1 are names to aiohttp; the resolver sees the real address
        for name in ("localhost", "0x7f000001", "2130706433", "127.1"):
            with pytest.raises(BlockedAddress):
                await resolver.resolve(name, 80)
    finally:
        await resolver.close()
