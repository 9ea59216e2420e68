"""Avro schemas (``.avsc``) of canonical entities and of the hub's own records."""
