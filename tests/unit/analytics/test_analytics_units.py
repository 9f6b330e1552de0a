"""Pure parts of analytics: clustering, latency histograms, date ranges, figures."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest

from common import events as ev
from common.web import ApiError
from services.analytics import clustering, ingest, reports
from services.analytics import repository as repo


def test_similar_questions_cluster_together_biggest_first():
    questions = ["How do I reset my password?", "how do i reset my password", "Resetting password?",
                 "Do you deliver on Sundays?", "Delivery on sunday?", "What's the weather on Mars?"]
    clusters = clustering.cluster(questions)
    assert [c.count for c in clusters] == [3, 2, 1]
    assert "password" in clusters[0].label.lower() and "sunday" in clusters[1].label.lower()
    assert sum(clusters[0].questions.values()) == 3


def test_clustering_handles_empty_and_stopword_only_questions():
    assert clustering.cluster([]) == []
    clusters = clustering.cluster(["what?", "what?", "how?"])
    assert sorted(c.count for c in clusters) == [1, 2]


@pytest.mark.parametrize("ms", [1, 7.5, 50, 333, 2_000, 45_000])
def test_a_latency_bucket_is_within_five_percent(ms):
    middle = ingest.latency_of_index(ingest.latency_index(ms))
    assert abs(middle - ms) / ms <= 0.05 + 1e-9


def test_percentiles_from_a_histogram():
    times = [100] * 90 + [1000] * 10
    histogram: dict[int, int] = {}
    for t in times:
        histogram[ingest.latency_index(t)] = histogram.get(ingest.latency_index(t), 0) + 1
    assert abs(reports.percentile(histogram, 0.5) - 100) <= 5
    assert abs(reports.percentile(histogram, 0.95) - 1000) <= 50
    assert reports.percentile({}, 0.5) is None


def test_date_ranges_default_and_refuse_inverted_long_or_absurd_ones():
    today = date(2026, 11, 23)
    rng = reports.parse_range(None, None, today=today)
    assert (rng.since, rng.until, rng.days) == (date(2026, 10, 25), today, 30)
    assert rng.previous() == reports.Range(date(2026, 9, 25), date(2026, 10, 24))
    for since, until, code in (("2026-11-02", "2026-11-01", "inverted_date_range"),
                               ("2025-01-01", "2026-11-01", "date_range_too_long"),
                               ("nope", None, "invalid_date"), ("1900-01-01", "1900-01-02", "date_out_of_range")):
        with pytest.raises(ApiError) as exc:
            reports.parse_range(since, until, today=today)
        assert exc.value.status == 400 and exc.value.code == code


def test_figures_and_their_change():
    row = {c: 0 for c in repo.ROLLUP_COLUMNS}
    row.update(conversations=10, engaged_conversations=8, handoff_conversations=2, messages=30, replies=30,
               feedback_up=3, feedback_down=1, new_visitors=4, cost_usd=1.5, failed_replies=2, cancelled_replies=1)
    m = reports.metrics(row, visitors=6, histograms={})
    assert m["deflection_rate"] == 0.75 and m["satisfaction_rate"] == 0.75 and m["returning_visitors"] == 2
    assert m["interactions_per_conversation"] == 3 and m["likes_per_1000_replies"] == 100
    assert m["cost_per_conversation_usd"] == 0.15 and m["errors"] == 1 and m["ttft_p50_ms"] is None
    empty = reports.metrics(None, 0, {})
    assert empty["deflection_rate"] is None and empty["cost_per_conversation_usd"] is None
    change = reports.change(m, empty)
    assert change["conversations"] is None
    assert reports.change(m, {**m, "conversations": 5})["conversations"] == 1.0


def test_only_real_questions_without_knowledge_are_unanswered():
    base = dict(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=uuid.uuid4(),
                reply_id=uuid.uuid4(), reply_seq=2, visitor_message_id=uuid.uuid4(), text="x", provider="local",
                model="m")
    assert ingest.is_unanswered(ev.AiReplyCompletedEvent(**base, visitor_intent="question"))
    assert not ingest.is_unanswered(ev.AiReplyCompletedEvent(**base, visitor_intent="greeting"))
    assert not ingest.is_unanswered(ev.AiReplyCompletedEvent(**base, answered_from_knowledge=True))


def test_buckets_and_partitions_are_utc_months():
    at = datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc)
    assert repo.hour_of(at) == datetime(2026, 12, 31, 23, tzinfo=timezone.utc)
    assert repo.month_of(at) == date(2026, 12, 1) and repo.next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert repo.partition_name(date(2027, 1, 1)) == "events_2027_01"


def test_feedback_event_is_in_the_contract():
    assert ev.EVENT_TYPES["FeedbackGivenEvent"] is ev.FeedbackGivenEvent
    with pytest.raises(Exception):
        ev.FeedbackGivenEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=uuid.uuid4(),
                              reply_id=uuid.uuid4(), rating="meh")
