"""Many hosts on one machine, for tests of objstore across a real (namespaced) network.

- :mod:`.rules`: network faults as data (cuts, loss, rate limits) and the iptables/tc
  commands that make them (pure).
- :mod:`.netns`: a bridge and one network namespace per host; processes and Python code run
  inside a host; faults applied and healed; every namespace removed, even after a crash.
- :mod:`.deploy`: a cluster started from the example configs of ``ops/deploy/``, with the
  hosts' addresses put in.
"""
