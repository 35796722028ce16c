"""Hubble Relay as a flow source: `observer.Observer/GetFlows` over gRPC, filtered to DNS on the
server, every node's flows in one stream (docs/flow-logs.md, "From Hubble Relay").

observer.proto holds the messages the watcher reads, with upstream's field names and numbers;
observer_pb2.py is generated from it (`make proto`), never edited.
"""
