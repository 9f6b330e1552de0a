from services.knowledge.crawl import CrawlOptions, page_links, path_allowed, sitemap_locations
from services.knowledge.repository import vector_search_sql
from services.knowledge.ranking import Fusion, RankedList, fuse


def _lists(dense_weight=1.0, lexical_weight=1.0):
    dense = RankedList("dense", [{"id": 1}, {"id": 2}, {"id": 3}], [0.9, 0.8, 0.7], dense_weight)
    lexical = RankedList("lexical", [{"id": 3}, {"id": 4}], [12.0, 3.0], lexical_weight)
    return [dense, lexical]


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = [record["id"] for record, _ in fuse(_lists(), Fusion(method="rrf"))]
    assert fused[0] == 3  # third and first: beats a single first place
    assert set(fused) == {1, 2, 3, 4}


def test_weights_decide_between_the_sides():
    assert [r["id"] for r, _ in fuse(_lists(lexical_weight=0.0), Fusion(method="rrf"))] == [1, 2, 3]
    assert [r["id"] for r, _ in fuse(_lists(dense_weight=0.0), Fusion(method="rrf"))] == [3, 4]
    # rank 1 on one side against ranks 3 and 1: a small k lets the first place win
    assert fuse(_lists(dense_weight=3.0), Fusion(method="rrf", rrf_k=1))[0][0]["id"] == 1
    assert [r["id"] for r, _ in fuse(_lists(lexical_weight=0.0), Fusion(method="cc"))] == [1, 2, 3]


def test_convex_combination_normalises_each_list():
    # BM25's scale (12 vs 3) does not swamp cosine's (0.9 vs 0.7): both map to [0, 1]
    fused = fuse(_lists(), Fusion(method="cc"))
    scores = {record["id"]: score for record, score in fused}
    assert scores[1] == 1.0 and scores[3] == 1.0 and scores[4] == 0.0


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
