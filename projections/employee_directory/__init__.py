"""Read model ``employee_directory``: HR's employees with their department, manager and,
for sales reps, the customers, orders and order value they look after."""
