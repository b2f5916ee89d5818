"""Render runner (plan, gate, execute, record). Not built yet: see issue 4."""
