"""Settings → WhatsApp (owner only): activation, message types, cap and price (routes.py),
the monthly statement (billing.py), and the Cloud API's webhooks (webhooks.py)."""
