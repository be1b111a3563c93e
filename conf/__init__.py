"""The configs, read these first (README). This folder is also the package lamini_lm.conf (pyproject.toml
maps it), so an installed lamini_lm composes the very same configs."""
