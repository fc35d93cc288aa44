"""The Recall sidebar: a small web app the thin client shows next to the desktop."""
