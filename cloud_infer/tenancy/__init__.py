"""Per-tenant limits on every shared resource, and fair scheduling of the shared CPU models."""
