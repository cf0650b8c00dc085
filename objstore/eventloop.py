"""The event loop every objstore process runs on: uvloop when it is installed, else asyncio's.

uvloop (libuv) runs the same asyncio code with a cheaper loop and socket transports; on a
small request every hop is a few socket reads and writes, so the loop's own cost is a good
part of the CPU a request takes. Installed by the process entry (``ops/cli/services.py``)
before the loop is made; library code never depends on which loop runs it.
``OBJSTORE_EVENT_LOOP=asyncio`` in the environment keeps asyncio's own loop.
"""
from __future__ import annotations

import asyncio
import os


def install_fast_loop() -> bool:
    """Make new event loops uvloop's; returns False (asyncio's loop stays) when unavailable."""
    if os.environ.get("OBJSTORE_EVENT_LOOP", "uvloop") == "asyncio":
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
