"""The gRPC service entry point: the Scheduler servicer, its error-mapping interceptor, and
`gridshift serve`."""
