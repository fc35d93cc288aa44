"""Recall search: finding what a user saw on their desktop from a natural-language query."""
