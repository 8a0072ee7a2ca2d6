"""Shared test support: builders and harnesses that test modules and benchmarks import (a test
module never imports another test module)."""
