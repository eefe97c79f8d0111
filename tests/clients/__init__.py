"""Independent clients the tests read our services with (each run in its own process)."""
