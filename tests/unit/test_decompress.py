"""Bounded decompression (common/decompress.py): a bomb costs the ceiling, never its size."""
import gzip
import resource
import zlib

import pytest

from common.decompress import Corrupt, TooLarge, decode_content, inflate
from tests.hostile.inputs import gzip_bomb


def test_a_gzip_bomb_is_refused_at_the_ceiling_without_inflating_it():
    bomb = gzip_bomb(512 * 1024 ** 2)
    assert len(bomb) < 1024 ** 2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TooLarge):
        inflate(bomb, 10 * 1024 ** 2)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # the 512 MiB it claims never existed


def test_honest_data_in_every_encoding_comes_back_whole():
    data = b"<urlset>" + b"<url><loc>https://shop.example/</loc></url>" * 1000 + b"</urlset>"
    assert inflate(gzip.compress(data), len(data)) == data
    assert inflate(gzip.compress(data[:100]) + gzip.compress(data[100:]), len(data)) == data  # two members
    assert decode_content(zlib.compress(data), "deflate", len(data)) == data
    raw = zlib.compressobj(wbits=-15)
    assert decode_content(raw.compress(data) + raw.flush(), "deflate", len(data)) == data
    assert decode_content(data, "identity", len(data)) == data


@pytest.mark.parametrize("body, encoding", [(b"not gzip at all", "gzip"), (gzip.compress(bytes(range(256)) * 40)[:200], "gzip"),
                                            (b"whatever", "br")])
def test_corrupt_cut_or_unknown_encodings_are_refused(body, encoding):
    with pytest.raises(Corrupt):
        decode_content(body, encoding, 1024 ** 2)
