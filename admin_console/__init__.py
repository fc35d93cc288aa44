"""The admin console: its own web app and port, for ops viewers, operators and admins.

It reaches the cloud only through the cloud's ``/v1/ops`` API (it imports nothing of the cloud tier),
signs its users in itself (``identity``), and exchanges its own service token for a short-lived token of
each signed-in user's role, so every action is the cloud's to allow and is audited as that user's.
"""
