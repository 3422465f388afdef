"""Notifications (SPEC §2): the outbox and its channels.

- kinds: which order event tells whom (one table), message kinds and their names
- outbox: rows written in the action's transaction; claiming, outcomes, resend
- alerts: the desk's bell (one row per staff member per order event)
- email: a message's subject, text and HTML, rendered at send time
- transport: SMTP, or .eml files under instance/mail/ when SMTP is not set
- delivery: claim due rows, render, send, record the outcome
"""
