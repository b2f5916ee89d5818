"""reg: asset and model registry with a render runner for talking-head pipelines.

The repository root is this package: `registry/`, `runner/`, `cli/`, `migrations/` and
`manifests/` install as `reg.registry`, `reg.runner`, ... (pyproject's `package-dir`), so the
folders a reader sees stay where they are and the wheel adds one import name, `reg`.
"""


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs start-up time `reg --help` should not pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("reg")
        except PackageNotFoundError:  # a checkout that was never installed
            return "0+unknown"
    raise AttributeError(name)
