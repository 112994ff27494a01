"""qwenbuild: a declarative build system for design assets made with Qwen-Image models."""

__version__ = "0.1.0"
