"""docs/architecture.md's event table is what scripts/event_table.py generates from the topology
and the handler registries: a new event, consumer or handler makes this fail until the doc is
regenerated (python -m scripts.event_table)."""
from scripts import event_table


def test_the_event_table_in_the_architecture_doc_is_current():
    doc = event_table.DOC.read_text()
    assert event_table.START in doc and event_table.END in doc
    assert event_table.rewrite(doc) == doc, "stale: run python -m scripts.event_table"


def test_every_event_has_a_publisher_and_every_durable_event_a_consumer():
    published, consumed = event_table.publishers(), event_table.consumers()
    assert [name for name, services in published.items() if not services] == []
    assert [name for name, handlers in consumed.items() if not handlers] == []
