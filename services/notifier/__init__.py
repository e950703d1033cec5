"""The notifier: one apology per decision, in the customer's language."""
