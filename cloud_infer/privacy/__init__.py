"""Per-user privacy controls: settings (pause, exclusions, retention), their HTTP API, and the
redaction ingest applies before anything is stored."""
