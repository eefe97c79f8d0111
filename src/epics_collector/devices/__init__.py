"""Built-in device types (registered as entry points in ``pyproject.toml``)."""
