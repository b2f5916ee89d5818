"""reg's registry: catalog (manifests), state (database), content-addressed store, validators.

Nothing in this package prints or parses command lines; `cli/` does that.
"""
