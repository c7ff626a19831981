"""Storage: the port the rest of coldchain uses, its adapters, and the durable spool."""
