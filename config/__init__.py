"""Configuration in one typed place: every setting, its default, its help and its
flag (config/settings.py)."""

from config.settings import ASSETS_DIR, REPO_ROOT, Settings, default_data_dir

__all__ = ["ASSETS_DIR", "REPO_ROOT", "Settings", "default_data_dir"]
