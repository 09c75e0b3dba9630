"""The running server: listeners, the query pipeline, and lifecycle (start, reload, stop)."""
