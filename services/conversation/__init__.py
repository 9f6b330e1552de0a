"""Visitors, conversations, messages and replies."""
