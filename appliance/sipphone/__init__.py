"""A small asyncio SIP user agent over UDP, used as a test caller against Asterisk.

It registers with digest authentication, places and receives calls with a G.711 offer,
streams RTP paced by a fixed clock (comfort silence while idle, like a real phone) and
records what it receives with per-packet arrival times.
"""

from .dialog import Dialog
from .errors import SipError, SipTimeoutError
from .media import ReceivedPacket, SentPacket
from .message import SipMessage
from .phone import SipPhone

__all__ = [
    "Dialog",
    "ReceivedPacket",
    "SentPacket",
    "SipError",
    "SipMessage",
    "SipPhone",
    "SipTimeoutError",
]
