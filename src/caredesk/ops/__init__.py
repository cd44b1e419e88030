"""Running caredesk on several machines: Prometheus metrics (``/metrics``) and structured logs."""
