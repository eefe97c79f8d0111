"""Built-in processors (registered as entry points in ``pyproject.toml``)."""
