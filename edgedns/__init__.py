"""edgedns: authoritative DNS for private zones, answers from health-checked pools."""

__version__ = "0.1.0"
