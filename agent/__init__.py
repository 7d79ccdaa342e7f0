"""Switchboard data plane: ARI client, calls, RTP, audio and the reply loop.

Never imports :mod:`appliance`.
"""
