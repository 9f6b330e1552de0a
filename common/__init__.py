"""Shared library of the avatarchat services. Imports nothing from services/."""
