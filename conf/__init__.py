"""The configs, read these first (README). This folder is also the package lamini_lm.conf (pyproject.toml
maps it), so an installed lamini_lm composes the very same configs. Every command reads the tree beside the
lamini_lm that Python imports (lamini_lm.config.conf_dir), never another checkout's."""
