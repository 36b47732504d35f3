"""Real-model tests (a package, so that its modules import their conftest's helpers as `.conftest`)."""
