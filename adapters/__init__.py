"""The edges of gridshift: protobuf codec, forecast providers, stores, the gRPC server."""
