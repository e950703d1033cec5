"""Service recovery: the recovery service, the notifier, and what they share."""
