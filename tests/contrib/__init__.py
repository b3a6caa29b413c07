"""Tests of the integrations (headless_client.contrib)."""
