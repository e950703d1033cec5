"""The escalation desk: the web pages case owners work their queue in, served by the
recovery service under ``/desk`` (docs/desk.md)."""
