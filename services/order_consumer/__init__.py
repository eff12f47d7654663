"""order-consumer: drives payments for placed orders and retries, with backoff."""
