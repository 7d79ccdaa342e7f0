"""Provider presets for trunks (filled in below, from the providers' public documentation)."""

from __future__ import annotations

from appliance.config.trunk import Trunk


def dials_with_plus(trunk: Trunk) -> bool:
    """Whether numbers are dialled over ``trunk`` in E.164 with the leading +."""
    return True
