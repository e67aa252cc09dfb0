"""Wrappers around the real programs we measure against (BLAST+, VSEARCH)."""
