"""The HTTP API: events in (contract JSON and Segment's tracking format), referral links, CRM deals,
one-click unsubscribe and the SendGrid event webhook. `python starter.py api` serves it."""
