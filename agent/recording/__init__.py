"""Call recordings: stereo (caller left, agent right), written as the call goes, optionally
sealed (encrypted at rest), linked from the call records and purged with them.

``writer`` records a call, ``sealed`` is the encryption at rest, ``reader`` reads a file
back, ``index`` is the link from the call records, ``mixer`` aligns the two sides.
"""
