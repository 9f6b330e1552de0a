-- Tables every service has: the inbox (event ids already handled) and the outbox
-- (events committed with the service's own changes, published after commit).
CREATE TABLE processed_events (
    event_id    uuid PRIMARY KEY,
    event_type  text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    event_type   text NOT NULL,
    routing_key  text NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
