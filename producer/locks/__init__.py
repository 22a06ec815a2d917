"""Lock loaders, one module per format."""
