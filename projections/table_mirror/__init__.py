"""Read model ``mirror``: each raw topic kept as a SQL table of the rows' latest state."""
