"""payment-service: simulated payments, one event stream per order (`payment-{order_id}`)."""
