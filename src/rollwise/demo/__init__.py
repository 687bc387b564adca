"""A tiny HTTP service to roll out: it says which version it is, and can be told to fail or be slow."""
