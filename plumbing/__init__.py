"""Shared plumbing: configuration, the data converter and payload codec, telemetry, process exit."""
