"""Repair: re-creating the copies of blobs below their policy (planner, leader queue,
service and its HTTP routes). The storage nodes' side is ``objstore.node.repair_worker``."""
