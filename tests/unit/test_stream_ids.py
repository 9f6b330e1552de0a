from services.gateway.stream import parse_last_event_id


def test_last_event_id_tells_the_reply_and_whether_it_ended():
    assert parse_last_event_id("7-3") == (7, False)
    assert parse_last_event_id("7-a") == (7, False)
    assert parse_last_event_id("12-end") == (12, True)
    assert parse_last_event_id(None) is None
    assert parse_last_event_id("garbage") is None
    assert parse_last_event_id("-end") is None
