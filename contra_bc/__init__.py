"""contra-bc: behaviour cloning toolkit for NES Contra and games like it."""

__version__ = "0.1.0"
