"""Slow, obviously-right reference implementations that the fast code is tested against."""
