"""Forwarding: upstreams and their health, and the cache of forwarded answers."""
