"""Tests of the front doors: client dialects served over every provider."""
