"""A local dYdX v4 emulator: chain engine, matching, indexer REST + WebSocket, validator gRPC.

An independent implementation: it imports nothing of the client package (see DESIGN.md).
"""
