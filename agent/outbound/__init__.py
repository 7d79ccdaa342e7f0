"""Outbound calls: calling rules, placing calls through ARI, and the local HTTP API."""
