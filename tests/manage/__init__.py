"""Tests of llmux.manage: the management API on the admin port."""
