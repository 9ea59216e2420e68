"""Read model ``store_sales``: till revenue, tickets and average basket per store, hour and day."""
