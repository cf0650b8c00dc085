"""Test harnesses that run in the test's own process.

- :mod:`tests.harness.eventually`: wait for a condition with a deadline (never sleep "to let
  things settle").
- :mod:`tests.harness.cluster`: a whole cluster (metadata node, storage nodes, gateway) in
  one event loop on real 127.0.0.1 sockets, each server built by its own ``create_app``.
- :mod:`tests.harness.link`: the TCP relay in front of each storage node that slows or cuts
  its traffic.
- :mod:`tests.harness.disk`: finding a blob's bytes on a node's disk and flipping them.
"""
