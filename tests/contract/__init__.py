"""Tests that hold the fake server and the hook to the published OpenAPI document of the Tamtam API."""
