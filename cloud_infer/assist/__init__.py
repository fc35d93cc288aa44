"""Assist: chat on what the user has in front of them (summarise, translate, polish, explain, ask)."""
