-- Chatbot created and updated events carry their chatbot in a snapshot: the column names it
-- too, so deleting the chatbot erases them with its other events.
UPDATE events SET chatbot_id = (payload -> 'chatbot' ->> 'chatbot_id')::uuid
WHERE chatbot_id IS NULL AND payload ? 'chatbot';
