"""Read model ``customer_360``: one customer across CRM, orders and accounts receivable."""
