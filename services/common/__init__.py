"""Infrastructure both services share: the wire contract, the event store, the outbox relay,
Kafka wiring, settings, logging and the bundled local stack."""
