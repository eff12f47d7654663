"""product-service: the event-sourced catalog (streams `product-{uuid}`, read model `products`)."""
