"""Tests of the governance store: one contract suite over every backend, and migrations."""
