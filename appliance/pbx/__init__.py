"""Asterisk: rendering its configuration and running it (system, package or contained)."""
