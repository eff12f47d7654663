"""order-service: orders from carts, their status machine, and the payment outcomes."""
