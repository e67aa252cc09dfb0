"""Tasks: identification, probes, zero-shot clustering and retrieval, and their metrics."""
