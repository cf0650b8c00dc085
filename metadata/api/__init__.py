"""The metadata service as its users see it: the client, the commands it sends, and the
record and result types that cross the API. The only part of ``metadata`` that gateways,
storage nodes and admin commands import."""
