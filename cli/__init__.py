"""Thin click front end over `registry/`."""
