"""Prometheus metrics shared by every service (exposed at /metrics)."""
from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["service", "route"])
EVENTS_PUBLISHED = Counter("events_published_total", "Events published", ["service", "event"])
EVENTS_CONSUMED = Counter("events_consumed_total", "Events handled and acked", ["service", "event"])
EVENTS_RETRIED = Counter("events_retried_total", "Events sent back for a retry", ["service", "event"])
EVENTS_DEAD_LETTERED = Counter("events_dead_lettered_total", "Events dead-lettered", ["service", "event"])
SSE_CONNECTIONS = Gauge("sse_connections_open", "Open SSE connections", ["service"])
TIME_TO_FIRST_TOKEN = Histogram(
    "reply_time_to_first_token_seconds", "Provider time to first token", ["service", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("queue_depth_messages", "Messages ready in a consumed queue (and its dead-letter queue)",
                    ["service", "queue"])
EVENTS_HELD = Counter("events_held_total", "Events put back untouched because a dependency was away",
                      ["service", "event", "dependency"])
CONSUMERS_HELD = Gauge("bus_consumers_held", "1 while this process takes no events, waiting for a dependency",
                       ["service"])
DEPENDENCY_UP = Gauge("dependency_up", "0 while a dependency is away (as seen by the bus), else 1",
                      ["service", "dependency"])
EVENTS_DEFERRED = Counter("events_deferred_total", "Events put off until their predecessor was handled",
                          ["service", "event"])
MESSAGE_ORDER_GAPS = Counter("message_order_gaps_total",
                             "Messages stored after waiting in vain for an earlier message of their conversation",
                             ["service"])
