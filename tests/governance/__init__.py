"""Tests of llmux.governance."""
