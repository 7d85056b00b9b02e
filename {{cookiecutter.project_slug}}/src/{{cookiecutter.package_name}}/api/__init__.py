"""HTTP transports. Each parses, calls the core, and formats; none holds logic."""
