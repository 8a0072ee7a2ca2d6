"""Shared test support: fault-injecting stores, a small Lambda-retry simulation, event builders
and harnesses that test modules and benchmarks import (a test module never imports another test
module)."""
