import pytest

from common.netguard import UnsafeUrl, ensure_public_url, public_address


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1"])
def test_private_loopback_link_local_and_metadata_addresses_are_not_public(address):
    assert not public_address(address)


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are(address):
    assert public_address(address)


@pytest.mark.parametrize("url", ["http://127.0.0.1:3010/internal", "http://localhost/v1", "ftp://example.com/",
                                 "http://[::1]/", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd",
                                 "http://2130706433/"])
async def test_urls_that_reach_inside_are_refused(url):
    with pytest.raises(UnsafeUrl):
        await ensure_public_url(url)
