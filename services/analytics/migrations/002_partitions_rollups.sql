-- Raw events move to a table partitioned by month on occurred_at. The primary key includes the
-- partition key; occurred_at comes from the event body, so a redelivery has the same
-- (event_id, occurred_at) and is refused by the key. Old months are dropped whole.
ALTER TABLE events RENAME TO events_v1;
ALTER INDEX events_tenant_time RENAME TO events_v1_tenant_time;
ALTER TABLE events_v1 RENAME CONSTRAINT events_pkey TO events_v1_pkey;

CREATE TABLE events (
    event_id         uuid NOT NULL,
    occurred_at      timestamptz NOT NULL,
    event_type       text NOT NULL,
    tenant_id        uuid NOT NULL,
    chatbot_id       uuid,
    conversation_id  uuid,
    correlation_id   text NOT NULL,
    payload          jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX events_tenant_time ON events (tenant_id, occurred_at);

-- The months of the old table's rows, so the copy below has somewhere to go.
DO $$
DECLARE m date;
BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date FROM events_v1
             UNION SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       'events_' || to_char(m, 'YYYY_MM'),
                       (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    END LOOP;
END $$;
INSERT INTO events (event_id, occurred_at, event_type, tenant_id, chatbot_id, conversation_id, correlation_id,
                    payload, received_at)
SELECT event_id, occurred_at, event_type, tenant_id, (payload->>'chatbot_id')::uuid,
       (payload->>'conversation_id')::uuid, correlation_id, payload, received_at FROM events_v1;
DROP TABLE events_v1;

-- Rollups: one row per (tenant, chatbot, grain, bucket); grain 'h' (hour) or 'd' (day), UTC.
-- Updated in the same transaction that stores the event, so they never count an event twice.
CREATE TABLE rollups (
    tenant_id              uuid NOT NULL,
    chatbot_id             uuid NOT NULL,
    grain                  char(1) NOT NULL CHECK (grain IN ('h', 'd')),
    bucket                 timestamptz NOT NULL,
    conversations          bigint NOT NULL DEFAULT 0,
    new_visitors           bigint NOT NULL DEFAULT 0,
    returning_conversations bigint NOT NULL DEFAULT 0,
    engaged_conversations  bigint NOT NULL DEFAULT 0,
    messages               bigint NOT NULL DEFAULT 0,
    replies                bigint NOT NULL DEFAULT 0,
    failed_replies         bigint NOT NULL DEFAULT 0,
    cancelled_replies      bigint NOT NULL DEFAULT 0,
    handoff_requests       bigint NOT NULL DEFAULT 0,
    handoff_conversations  bigint NOT NULL DEFAULT 0,
    cache_hits             bigint NOT NULL DEFAULT 0,
    answered_from_knowledge bigint NOT NULL DEFAULT 0,
    unanswered             bigint NOT NULL DEFAULT 0,
    feedback_up            bigint NOT NULL DEFAULT 0,
    feedback_down          bigint NOT NULL DEFAULT 0,
    prompt_tokens          bigint NOT NULL DEFAULT 0,
    completion_tokens      bigint NOT NULL DEFAULT 0,
    cost_usd               numeric(18, 6) NOT NULL DEFAULT 0,
    sentiment_positive     bigint NOT NULL DEFAULT 0,
    sentiment_neutral      bigint NOT NULL DEFAULT 0,
    sentiment_negative     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket, chatbot_id)
);

CREATE TABLE rollup_models (
    tenant_id          uuid NOT NULL,
    chatbot_id         uuid NOT NULL,
    grain              char(1) NOT NULL,
    bucket             timestamptz NOT NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    replies            bigint NOT NULL DEFAULT 0,
    cache_hits         bigint NOT NULL DEFAULT 0,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(18, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket, chatbot_id, provider, model)
);

-- Latency histograms: bucket index i holds times in [1.1^i, 1.1^(i+1)) ms, so a percentile read
-- from them is within 5% of the exact one. metric: 't' time to first token, 'r' total reply time.
CREATE TABLE rollup_latency (
    tenant_id   uuid NOT NULL,
    chatbot_id  uuid NOT NULL,
    grain       char(1) NOT NULL,
    bucket      timestamptz NOT NULL,
    metric      char(1) NOT NULL,
    idx         smallint NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket, chatbot_id, metric, idx)
);

-- The visitor's intent per reply (daily only).
CREATE TABLE rollup_intents (
    tenant_id   uuid NOT NULL,
    chatbot_id  uuid NOT NULL,
    bucket      timestamptz NOT NULL,
    intent      text NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, bucket, chatbot_id, intent)
);

-- Distinct visitors per day: a range's unique visitors cannot be summed from daily counts.
CREATE TABLE visitor_days (
    tenant_id   uuid NOT NULL,
    chatbot_id  uuid NOT NULL,
    day         date NOT NULL,
    visitor_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, day, chatbot_id, visitor_id)
);

-- One row per conversation: what the export and the "once per conversation" counts need.
CREATE TABLE conversation_facts (
    conversation_id   uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    chatbot_id        uuid NOT NULL,
    visitor_id        uuid,
    started_at        timestamptz,
    returning_visitor boolean,
    messages          integer NOT NULL DEFAULT 0,
    replies           integer NOT NULL DEFAULT 0,
    failed_replies    integer NOT NULL DEFAULT 0,
    handoff           boolean NOT NULL DEFAULT false,
    feedback_up       integer NOT NULL DEFAULT 0,
    feedback_down     integer NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(18, 6) NOT NULL DEFAULT 0,
    first_seen_at     timestamptz NOT NULL,
    last_activity_at  timestamptz NOT NULL
);
CREATE INDEX conversation_facts_tenant ON conversation_facts (tenant_id, first_seen_at);

-- One row per reply: the question, the answer, knowledge, rating. Quality reports read it.
CREATE TABLE reply_facts (
    reply_id                uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL,
    chatbot_id              uuid NOT NULL,
    conversation_id         uuid NOT NULL,
    question                text,
    asked_at                timestamptz,
    status                  text NOT NULL DEFAULT 'pending',
    answer                  text,
    citations               jsonb,
    answered_from_knowledge boolean,
    intent                  text,
    visitor_intent          text,
    unanswered              boolean NOT NULL DEFAULT false,
    completed_at            timestamptz,
    rating                  text,
    rating_comment          text,
    rated_at                timestamptz,       -- the rating event's time (newest wins)
    first_rated_at          timestamptz,       -- where the rating is counted in the rollups
    first_seen_at           timestamptz NOT NULL
);
CREATE INDEX reply_facts_unanswered ON reply_facts (tenant_id, completed_at) WHERE unanswered;
CREATE INDEX reply_facts_rated ON reply_facts (tenant_id, rated_at) WHERE rating IS NOT NULL;
CREATE INDEX reply_facts_tenant ON reply_facts (tenant_id, first_seen_at);

-- Per-tenant retention of raw events and of the per-reply and per-conversation facts (which
-- hold visitors' words). Aggregated rollups are kept.
CREATE TABLE tenant_settings (
    tenant_id       uuid PRIMARY KEY,
    retention_days  integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
