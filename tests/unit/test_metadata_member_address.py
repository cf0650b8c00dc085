"""Adding a metadata member (metadata.replication.membership.add_member) refuses an address
that is not host:port before it goes into the Raft configuration, which every member calls."""
from __future__ import annotations

import pytest

from metadata.replication.membership import add_member
from objstore.errors import InvalidArgument


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:", ":7000", "127.0.0.1:x", "127.0.0.1:\u00b2",
                                     "127.0.0.1:\u0667000", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:1000000"])
async def test_an_address_that_is_not_host_and_tcp_port_is_refused(address):
    with pytest.raises(InvalidArgument):
        await add_member(None, "m4", address)  # type: ignore[arg-type] - refused before the node is asked
