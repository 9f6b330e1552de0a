-- A rewrite holds a visitor's words: it names its chatbot and conversation, so deleting the
-- chatbot or erasing the visitor erases it too (rows written before stay at most a day).
ALTER TABLE query_rewrites ADD COLUMN chatbot_id uuid;
ALTER TABLE query_rewrites ADD COLUMN conversation_id uuid;
CREATE INDEX query_rewrites_chatbot ON query_rewrites (chatbot_id);
CREATE INDEX query_rewrites_conversation ON query_rewrites (conversation_id);
CREATE INDEX replies_conversation ON replies (conversation_id);
