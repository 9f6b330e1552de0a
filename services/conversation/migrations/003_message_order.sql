-- The gateway numbers the messages it accepts in each conversation; the last one stored here
-- is what the next must follow (common.events.VisitorMessageReceivedEvent.seq).
ALTER TABLE conversations ADD COLUMN last_message_seq bigint NOT NULL DEFAULT 0;
