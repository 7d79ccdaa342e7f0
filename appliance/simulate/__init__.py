"""Simulated callers: scripted personas calling an agent over the real telephone path."""
