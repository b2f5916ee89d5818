"""Shipped catalog data (TOML). A package only so that it travels inside the wheel."""
