"""The backplane: how server processes that serve the same rooms share them.

`LocalBackplane` (the default) is one process, nothing shared, nothing to install.
`RedisBackplane` (`c.CollabApp.backplane_url = "redis://..."`) lets several processes
behind a load balancer serve the same live documents (see `redis.py`). Both implement
`Backplane`; rooms see only the seam in `rooms/replica.py`.
"""

from __future__ import annotations

import logging
from typing import Any

from .local import Backplane, BackplaneUnavailable, ControlHandler, LocalBackplane


def make_backplane(url: str, log: logging.Logger, **options: Any) -> Backplane:
    """The backplane for `url`: "" is the in-process default, redis:// (rediss://, unix://) Redis.
    `options` go to the Redis backplane (`stream_max_bytes`)."""
    if not url:
        return LocalBackplane()
    if url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        from .redis import RedisBackplane  # imported only when configured: redis is optional

        return RedisBackplane(url, log=log, **options)
    raise ValueError(f"unsupported backplane_url {url!r} (expected redis://...)")


__all__ = ["Backplane", "BackplaneUnavailable", "ControlHandler", "LocalBackplane", "make_backplane"]
