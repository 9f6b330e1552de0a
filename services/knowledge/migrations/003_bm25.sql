-- The lexical side of search is BM25 (repository.lexical_candidates): an inverted index of
-- (chatbot, lexeme) postings read with an index-only scan, so a query touches only the
-- postings of its own words, and each chunk's length in lexemes for length normalisation.
-- Lexemes come from the chunk's tsvector, so stemming follows the knowledge base's
-- text_search_config. ``tf`` counts a word in the title or headings (tsvector weight A)
-- TITLE_TF times: BM25F's field weight, folded into one field.
ALTER TABLE chunks ADD COLUMN lexemes int NOT NULL DEFAULT 0;

CREATE TABLE chunk_terms (
    chatbot_id  uuid NOT NULL,
    term        text NOT NULL,
    chunk_id    bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    tf          real NOT NULL,
    lexemes     int NOT NULL,
    PRIMARY KEY (chatbot_id, term, chunk_id) INCLUDE (tf, lexemes)
);
CREATE INDEX chunk_terms_chunk ON chunk_terms (chunk_id);
-- N and the average length per chatbot, read with an index-only scan
CREATE INDEX chunks_chatbot_lexemes ON chunks (chatbot_id) INCLUDE (lexemes);

UPDATE chunks SET lexemes = (SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)
                             FROM unnest(chunks.tsv) u);
INSERT INTO chunk_terms (chatbot_id, term, chunk_id, tf, lexemes)
SELECT c.chatbot_id, u.lexeme, c.id,
       (SELECT count(*) FILTER (WHERE w <> 'A') + 2 * count(*) FILTER (WHERE w = 'A') FROM unnest(u.weights) w),
       c.lexemes
FROM chunks c, unnest(c.tsv) u;

-- BM25 replaced ts_rank over this index; nothing reads it any more, and every insert paid for it
DROP INDEX chunks_tsv;
