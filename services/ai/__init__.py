"""Turns a reply request into a streamed reply, and accounts for what it cost."""
