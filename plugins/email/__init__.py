"""The email sink: SMTP transport, and the mail composed from a message."""
