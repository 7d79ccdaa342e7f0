"""Caller audio in and agent audio out: RTP, codecs, jitter buffer, playout."""
