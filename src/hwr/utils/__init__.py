"""Small helpers shared by the entry points (config printing, run bookkeeping)."""
