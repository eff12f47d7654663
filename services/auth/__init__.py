"""auth-service: accounts, password login, RS256 access tokens and their JWKS."""
