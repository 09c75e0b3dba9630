"""The admin endpoint: HTTP routes, Prometheus metrics and the status snapshot."""
