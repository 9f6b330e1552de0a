from services.knowledge.crawl import CrawlOptions, page_links, path_allowed, sitemap_locations
from services.knowledge.repository import vector_search_sql
from services.knowledge.service import fuse


def test_reciprocal_rank_fusion_rewards_agreement():
    vector = [{"id": 1}, {"id": 2}, {"id": 3}]
    text = [{"id": 3}, {"id": 4}]
    fused = [record["id"] for record, _ in fuse([vector, text])]
    assert fused[0] == 3  # second and first: beats a single first place
    assert set(fused) == {1, 2, 3, 4}


def test_small_knowledge_bases_are_searched_exactly():
    assert "+ 0" in vector_search_sql(384, exact=True) and "+ 0" not in vector_search_sql(384, exact=False)
    assert "vector(384)" in vector_search_sql(384, exact=False)


def test_path_patterns():
    assert path_allowed("https://a.com/docs/x", ["/docs/*"], [])
    assert not path_allowed("https://a.com/blog/x", ["/docs/*"], [])
    assert not path_allowed("https://a.com/docs/private", ["/docs/*"], ["/docs/private*"])
    assert path_allowed("https://a.com/", [], ["/blog/*"])


def test_links_and_sitemaps():
    html = b'<html><body><a href="/a#x">A</a><a href="b">B</a><a href="mailto:x@y">M</a></body></html>'
    assert page_links(html, "https://s.com/dir/") == ["https://s.com/a", "https://s.com/dir/b"]
    with_base = b'<html><head><base href="/other/"></head><body><a href="c">C</a></body></html>'
    assert page_links(with_base, "https://s.com/dir/") == ["https://s.com/other/c"]
    pages, nested = sitemap_locations(b"""<?xml version="1.0"?><sitemapindex
        xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://s.com/s1.xml</loc></sitemap>
        </sitemapindex>""")
    assert pages == [] and nested == ["https://s.com/s1.xml"]
    pages, _ = sitemap_locations(b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                 b"<url><loc>https://s.com/p</loc></url></urlset>")
    assert pages == ["https://s.com/p"]


def test_crawl_options_need_a_source_and_http():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        CrawlOptions()
    with pytest.raises(ValidationError):
        CrawlOptions(start_url="ftp://x.com/")
    assert CrawlOptions(sitemap_url="https://x.com/sitemap.xml").max_pages == 50
