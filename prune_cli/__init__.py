"""prune-cli: adapt a pretrained BERT to a task by learning a binary mask over its frozen weights."""

__version__ = "0.2.1"


def versions() -> dict[str, str]:
    """The versions a result depends on, for `prune-cli --version` and every run's metrics.json:
    torch picks the kernels (their rounding) and transformers the model code."""
    import platform
    from importlib import metadata

    found = {"prune_cli": __version__, "python": platform.python_version()}
    for package in ("torch", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover - both are dependencies
            found[package] = "not installed"
    return found
