"""Read model ``inventory_position``: stock on hand per product and location, with turnover."""
