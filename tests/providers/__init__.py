"""Tests of the provider codecs, one module per provider."""
