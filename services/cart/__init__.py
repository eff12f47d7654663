"""cart-service: event-sourced shopping carts, one `cart-{user_id}` stream per user."""
