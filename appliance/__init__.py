"""Switchboard control plane: configuration, rendering, install helpers, CLI."""
