"""Helpers shared by tests: builders, fakes and processes that several test folders use.

Test modules and conftest files import from here, never from one another.
"""
