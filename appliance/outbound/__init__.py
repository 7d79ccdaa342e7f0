"""Outbound calls, control plane: settings for the daemon, `dial`, campaigns, trunk presets."""
