"""Health checking: one prober engine for every pool member.

`checks` holds what a check is (its spec and result), one module per checker type does the
probing (`icmp`, `tcp`, `http`), and `scheduler` runs them on time, concurrently and bounded.
"""
