"""The client side: lock loaders, the CLI, fleet fan-out and reports."""
