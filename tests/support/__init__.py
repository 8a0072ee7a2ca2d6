"""Shared test support: fault-injecting stores, a small Lambda-retry simulation, event builders,
the deterministic simulation (a test module never imports another test module)."""
