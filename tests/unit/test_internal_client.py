"""A failed call between services answers the caller without our addresses or ports."""
import aiohttp
import pytest

from common.http import InternalClient
from common.web import ApiError


async def test_a_service_that_is_down_is_a_503_that_names_no_address():
    async with aiohttp.ClientSession() as session:
        client = InternalClient(session, "http://127.0.0.1:9", "knowledge")  # nothing listens on port 9
        with pytest.raises(ApiError) as caught:
            await client.request("GET", "/internal/anything", timeout=2)
    error = caught.value
    assert (error.status, error.code, error.details) == (503, "unavailable", None)
    assert "127.0.0.1" not in error.text and ":9" not in error.text
