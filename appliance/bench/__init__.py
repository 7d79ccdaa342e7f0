"""Measuring the appliance: test calls, the voice-to-voice bench, its plots, tool choice."""
