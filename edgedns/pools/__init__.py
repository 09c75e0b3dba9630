"""Health-checked pools: members, rise/fall state, policies; `health/` probes them."""
