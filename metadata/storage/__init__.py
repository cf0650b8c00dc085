"""Durable state of a metadata node: the log, the hard state and snapshots."""
