"""Authoritative data: zones, the RFC 1034 lookup, and replies built from them."""
