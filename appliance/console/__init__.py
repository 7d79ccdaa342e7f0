"""The local web console: calls, transcripts, recordings, live calls, agents, bench, health.

``users`` holds the local accounts, ``auth`` the sessions, CSRF tokens and login limits,
``sources`` reads what the CLI reads, ``views`` renders pages, ``app`` wires them into an
aiohttp application, and ``cli`` is ``switchboard console``.
"""
