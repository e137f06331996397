"""The broker adapter: the only package that imports ib_insync.

`api` is its contract (value types and the BrokerClient protocol, free of ib_insync), `codes`
maps IB's error codes to the suite's error classes, and `ib_client.IBClient` implements the
contract over ib_insync; the other modules are IBClient's parts.
"""
