-- The running number of the messages the gateway accepted in each conversation: the
-- conversation service stores and answers them in this order, whichever gateway replica
-- accepted each one.
CREATE TABLE conversation_sequences (
    conversation_id  uuid PRIMARY KEY,
    last_seq         bigint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_sequences_updated ON conversation_sequences (updated_at);
