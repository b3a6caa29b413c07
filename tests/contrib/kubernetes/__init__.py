"""Tests of the EndpointSlice source (headless_client.contrib.kubernetes)."""
