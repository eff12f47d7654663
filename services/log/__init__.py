"""log-service (port 8006): every service's JSON log lines, stored in Postgres, searchable."""
