"""Configuration: typed models, loading and validation, errors with file and line."""

from probe_exporter.config.errors import ConfigError
from probe_exporter.config.loader import Config, default_config_patterns, load_config
from probe_exporter.config.module import Module

__all__ = ["Config", "ConfigError", "Module", "default_config_patterns", "load_config"]
