"""Replays of the event store: rebuilding the read models (``rebuild``) and re-publishing
stored events to Kafka (``publish``); ``window`` holds the pure pieces both parse."""
