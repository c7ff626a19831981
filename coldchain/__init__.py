"""coldchain: cold-chain monitoring for pharmacy fridges."""

__version__ = "0.1.0"
