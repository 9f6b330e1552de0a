-- Deleting a chatbot, a tenant or a visitor's data removes its conversations' message numbers
-- by conversation.
CREATE INDEX message_seqs_conversation ON message_seqs (conversation_id);
