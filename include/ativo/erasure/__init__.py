"""Erasure: requests, find, purge, redaction map, model follow-up, verification scan and receipts (DESIGN §5)."""
