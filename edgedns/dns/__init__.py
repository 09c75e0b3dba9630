"""DNS primitives with no policy of their own: names, the wire format on the query path,
record data, the presentation syntax and master files."""
