"""The Python client of the journeys, for backend systems, the CLI, the API and the demo: connect,
send events (one ingest path), read and steer journeys, prepare a namespace."""
