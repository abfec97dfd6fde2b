"""Test support: a fake OpenAI upstream, an in-process gateway and the OpenAPI validators."""
