"""Change capture from legacy databases: one module per capture method, one runner."""
