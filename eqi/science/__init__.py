"""Science layer: pure functions on arrays; parameters are passed in; no file or socket access."""
