"""Knowledge bases, documents, chunks, embeddings (pgvector) and full-text search."""
