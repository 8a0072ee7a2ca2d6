"""Shared test support: fault-injecting stores, a small Lambda-retry simulation, event builders."""
