"""The pure core of gridshift: domain types, validation, baselines, heuristics, MIP models,
the independent plan checker and accounting. Imports no gRPC, HTTP, SQL or GPU library."""
