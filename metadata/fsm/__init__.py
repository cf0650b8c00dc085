"""The metadata state machine: pure and deterministic (no IO, no clock, no randomness).

``machine`` applies commands to the cluster map, buckets, credentials, the object index
(``object_index``, ``records``, ``part_codec``, ``version_listing``) and multipart uploads
(``uploads``); ``snapshot`` encodes and restores the whole state."""
