"""Reading tables, building batches and the built-in data sources (census, synthetic)."""
