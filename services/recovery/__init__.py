"""The recovery service: cases, the policy book, the SLA clock and escalations."""
